"""Loading straight into place: each tensor is read in its stored dtype, converted alone to the
parameter dtype and put on its shards, never the whole model in fp32 or on one device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from safetensors.flax import save_file

from emergence.models.hf_checkpoint import load_hf_directory, read_safetensors
from emergence.models.registry import load_model
from emergence.models.weights import LazyTensors, build_model
from emergence.train.config import MeshConfig
from emergence.train.mesh import build_mesh, param_spec
from tests.models.helpers import FIXTURES


def _params(loaded) -> dict[str, jax.Array]:
    return {".".join(map(str, path)): var.get_value() for path, var in nnx.to_flat_state(nnx.state(loaded.model, nnx.Param))}


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < 4:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=4")
    return build_mesh(MeshConfig(fsdp=2, tensor=2))


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_a_placement_puts_every_parameter_on_its_shards_in_the_requested_dtype(mesh, param_dtype):
    def placement(path, shape):
        return NamedSharding(mesh, param_spec(path, shape, mesh))

    loaded = load_model(str(FIXTURES / "gqa_untied"), param_dtype=param_dtype, placement=placement)
    reference = _params(load_model(str(FIXTURES / "gqa_untied")))
    sharded = 0
    for path, value in _params(loaded).items():
        assert value.dtype == jnp.dtype(param_dtype), path
        assert value.sharding == placement(path, value.shape), path
        sharded += not value.sharding.is_fully_replicated
        np.testing.assert_array_equal(np.asarray(value), np.asarray(reference[path]).astype(jnp.dtype(param_dtype)))
    assert sharded == 2 + 2 * 7  # the embedding, lm_head and 7 projections in each of 2 layers
    assert loaded.config.param_dtype == param_dtype


def test_each_tensor_is_placed_before_the_next_is_read(mesh):
    config, stored, _ = load_hf_directory(FIXTURES / "gqa_untied")
    events = []

    def reader(name):
        def read():
            events.append("read")
            return stored[name]
        return read

    def placement(path, shape):
        events.append("place")
        return NamedSharding(mesh, param_spec(path, shape, mesh))

    build_model(config, LazyTensors({name: reader(name) for name in stored}), "lazy", placement)
    assert events[: 2 * len(stored)] == ["read", "place"] * len(stored)  # then the RoPE buffer
    assert events[2 * len(stored):] == ["place"]


def test_bf16_weights_are_read_as_bf16_and_widened_exactly(tmp_path):
    loaded = load_model(str(FIXTURES / "gqa_untied"))
    _, stored, _ = load_hf_directory(FIXTURES / "gqa_untied")
    directory = tmp_path / "bf16"
    directory.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (FIXTURES / "gqa_untied" / name).exists():
            (directory / name).write_bytes((FIXTURES / "gqa_untied" / name).read_bytes())
    save_file({name: jnp.asarray(stored[name], jnp.bfloat16) for name in stored}, str(directory / "model.safetensors"))
    readers = read_safetensors(directory / "model.safetensors")
    assert {read().dtype for _, read in readers.values()} == {jnp.dtype(jnp.bfloat16)}
    as_bf16 = _params(load_model(str(directory), param_dtype="bfloat16"))
    as_fp32 = _params(load_model(str(directory)))
    for path, value in _params(loaded).items():
        rounded = np.asarray(value).astype(jnp.bfloat16)
        np.testing.assert_array_equal(np.asarray(as_bf16[path]), rounded)
        np.testing.assert_array_equal(np.asarray(as_fp32[path]), rounded.astype(np.float32))


def test_each_host_reads_only_the_slices_its_devices_hold(mesh):
    """A placed safetensors checkpoint is read part by part (jax.make_array_from_callback): a
    sharded tensor as its shards, each once; a replicated one whole, once, for all its devices."""
    config, tensors, _ = load_hf_directory(FIXTURES / "gqa_untied")
    reads: list[tuple[str, tuple[int, ...]]] = []

    def counted(name):
        def read(index):
            part = tensors.part(name, index)
            reads.append((name, part.shape))
            return part

        return tensors.shape(name), read

    def placement(path, shape):
        return NamedSharding(mesh, param_spec(path, shape, mesh))

    names = list(tensors)
    def whole():
        raise AssertionError("a tensor that can be read in parts was read whole")

    model = build_model(config, LazyTensors(dict.fromkeys(names, whole), {n: counted(n) for n in names}), "test", placement)
    reference = _params(load_model(str(FIXTURES / "gqa_untied")))
    for path, value in _params(type("Loaded", (), {"model": model})).items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(reference[path]), err_msg=path)
    parts = {name: [shape for n, shape in reads if n == name] for name in names}
    q_proj = "model.layers.0.self_attn.q_proj.weight"  # [out, in] stored; the kernel is fsdp × tensor
    assert parts[q_proj] == [(16, 16)] * 4 and tensors.shape(q_proj) == (32, 32)
    assert parts["model.norm.weight"] == [(32,)]  # replicated: read once
