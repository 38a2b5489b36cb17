import csv, json, sys, hashlib
from pathlib import Path
a, b = Path(sys.argv[1]), Path(sys.argv[2])
bad = 0; n = 0
def same(what, x, y):
    global bad, n
    n += 1
    if x != y:
        bad += 1; print("DIFFERENT:", what)
def table(p):
    rows = list(csv.DictReader(open(p)))
    return [{k: v for k, v in r.items() if k not in ("seconds", "code_version")} for r in rows]
for sweep in ("tiny", "smol"):
    same(f"{sweep}/results.csv", table(a / sweep / "results.csv"), table(b / sweep / "results.csv"))
    for f in sorted((a / sweep).rglob("*")):
        rel = f.relative_to(a)
        if f.name in ("records.jsonl", "adapter_model.safetensors"):
            same(str(rel), f.read_bytes(), (b / rel).read_bytes())
        if f.suffix == ".json" and f.parent.name == "cells":
            ra, rb = json.loads(f.read_text()), json.loads((b / rel).read_text())
            for r in (ra, rb):
                r.pop("timings", None); r.pop("seconds", None); r.pop("code_version", None); r.pop("finished", None)
                r.get("row", {}).pop("seconds", None); r.get("row", {}).pop("code_version", None)
            pick = lambda r: (r["row"], r.get("train"), r.get("config"))  # noqa: E731
            same(str(rel) + " row/train/config", pick(ra), pick(rb))
for m in ("lora", "full"):
    drop = ("seconds", "tokens_per_s")
    la = [{k: v for k, v in json.loads(l).items() if k not in drop} for l in (a / f"ft_{m}/metrics.jsonl").read_text().splitlines()]
    lb = [{k: v for k, v in json.loads(l).items() if k not in drop} for l in (b / f"ft_{m}/metrics.jsonl").read_text().splitlines()]
    same(f"ft_{m}/metrics.jsonl ({len(la)} lines)", la, lb)
    for f in sorted((a / f"ft_{m}").rglob("*.safetensors")):
        rel = f.relative_to(a); same(str(rel), f.read_bytes(), (b / rel).read_bytes())
    same(f"eval_{m}.jsonl", (a / f"eval_{m}.jsonl").read_bytes(), (b / f"eval_{m}.jsonl").read_bytes())
    same(f"eval_{m}.json metrics", json.loads((a / f"eval_{m}.json").read_text())["metrics"], json.loads((b / f"eval_{m}.json").read_text())["metrics"])
print(f"{n - bad}/{n} identical")
