"""SmolLM2 GGUF load: our parser / dequantizer vs the gguf library's, alone and inside load_model.

Warm (page cache, imports, jit done), alternating, N rounds; prints every value and the best."""
import sys, time
import numpy as np
from gguf import quants
from emergence.models import gguf_file, gguf_loader, weights
from emergence.models.registry import alias_path, load_model
path = alias_path("smollm2-135m")
ours_read, lib_read = gguf_file.read_gguf, gguf_file._from_library
ours_deq = gguf_loader.dequantize
lib_deq = lambda data, t: np.asarray(quants.dequantize(data, t), dtype=np.float32).reshape(-1)  # noqa: E731
def parse(reader):
    s = time.perf_counter(); c = reader(path); _ = [t.data.shape for t in c.tensors]; return time.perf_counter() - s
def deq(fn):
    c = ours_read(path); s = time.perf_counter()
    for t in c.tensors:
        fn(t.data, t.tensor_type)
    return time.perf_counter() - s
def load(reader, dequant, cached=True):
    gguf_loader.read_gguf, gguf_loader.dequantize = reader, dequant
    if not cached:
        weights._abstract_split.cache_clear()
    s = time.perf_counter(); load_model("smollm2-135m"); return time.perf_counter() - s
# same results
a, b = ours_read(path), lib_read(path)
assert a.fields.keys() == b.fields.keys() and all(a.fields[k] == b.fields[k] for k in a.fields)
assert all(x.name == y.name and np.array_equal(x.data, y.data) for x, y in zip(a.tensors, b.tensors, strict=True))
assert all(np.array_equal(ours_deq(t.data, t.tensor_type), lib_deq(t.data, t.tensor_type)) for t in a.tensors)
load(ours_read, ours_deq); load(lib_read, lib_deq)
runs = {
    "parse: ours": lambda: parse(ours_read), "parse: library": lambda: parse(lib_read),
    "dequantize: ours": lambda: deq(ours_deq), "dequantize: library": lambda: deq(lib_deq),
    "load_model: ours": lambda: load(ours_read, ours_deq),
    "load_model: library parse + dequantize": lambda: load(lib_read, lib_deq),
    "load_model: ours, abstract model not kept": lambda: load(ours_read, ours_deq, cached=False),
}
res = {k: [] for k in runs}
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    for k, f in runs.items():
        res[k].append(f())
for k, v in res.items():
    print(f"{k}: " + ", ".join(f"{x:.3f}" for x in v) + f" s (best {min(v):.3f})")
