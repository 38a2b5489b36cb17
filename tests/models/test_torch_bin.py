"""PyTorch ``.bin`` checkpoints load without torch, bit-identical to their safetensors twins, and a
pickle that asks for anything but tensors is refused before it can run (scripts/make_bin_fixtures.py)."""

import collections
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emergence.errors import UserError
from emergence.models.hf_checkpoint import load_hf_directory
from emergence.models.registry import load_model
from emergence.models.torch_bin import read_torch_bin
from tests.commands.test_model_cli import assert_one_line_error, run

BIN = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_bin"


def _params(loaded) -> dict[str, np.ndarray]:
    state = nnx.state(loaded.model, nnx.Param)
    return {".".join(map(str, path)): np.asarray(var.get_value()) for path, var in nnx.to_flat_state(state)}


@pytest.mark.parametrize("name", ["fp32_single", "bf16_sharded"])
def test_a_bin_checkpoint_holds_the_same_tensors_as_its_safetensors_twin(name):
    _, from_bin, _ = load_hf_directory(BIN / name)
    _, from_st, _ = load_hf_directory(BIN / f"{name}_st")
    assert sorted(from_bin) == sorted(from_st)
    for key in from_st:
        stored, twin = from_bin[key], from_st[key]
        assert stored.dtype == twin.dtype and stored.flags.c_contiguous, key
        np.testing.assert_array_equal(stored.view(np.uint8), twin.view(np.uint8), err_msg=key)


@pytest.mark.parametrize("name", ["fp32_single", "bf16_sharded"])
@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_a_bin_model_loads_bit_identically_to_its_safetensors_twin(name, param_dtype):
    from_bin = _params(load_model(str(BIN / name), param_dtype=param_dtype))
    from_st = _params(load_model(str(BIN / f"{name}_st"), param_dtype=param_dtype))
    assert from_bin.keys() == from_st.keys()
    for path, value in from_st.items():
        assert from_bin[path].dtype == value.dtype == jnp.dtype(param_dtype)
        np.testing.assert_array_equal(from_bin[path], value, err_msg=path)


def test_the_sharded_fixture_has_shards_and_a_strided_tensor():
    files = sorted(p.name for p in (BIN / "bf16_sharded").glob("*.bin"))
    assert files == ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    with zipfile.ZipFile(BIN / "bf16_sharded" / files[0]) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"BFloat16Storage" in data


class _Shell:
    """Pickles as ``os.system(command)``: what a hostile checkpoint would run on a plain unpickler."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _hostile_bin(path: Path, payload) -> None:
    """A zip laid out like torch.save's, whose pickle holds ``payload`` beside a harmless entry."""
    state = collections.OrderedDict(weight=payload)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(state, protocol=2))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


def test_a_pickle_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path, capsys):
    model = tmp_path / "hostile"
    shutil.copytree(BIN / "fp32_single", model)
    marker = tmp_path / "pwned"
    _hostile_bin(model / "pytorch_model.bin", _Shell(f"touch {marker}"))
    code, out, err = run(["info", str(model)], capsys)
    assert_one_line_error(code, err, str(model / "pytorch_model.bin"), "posix.system", "refused")
    assert not marker.exists() and out == ""


@pytest.mark.parametrize(
    "payload, what",
    [
        (collections.Counter(a=1), "collections.Counter"),  # any class but OrderedDict
        (np.float32(1), "numpy"),  # a numpy scalar rebuilds through numpy's own globals
    ],
)
def test_globals_other_than_the_tensor_rebuild_are_refused(tmp_path, payload, what):
    _hostile_bin(tmp_path / "x.bin", payload)
    with pytest.raises(UserError, match=f"x.bin: refused to load: .*{what}"):
        read_torch_bin(tmp_path / "x.bin")


def test_a_damaged_bin_is_one_line_naming_it(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="x.bin: not a PyTorch zip checkpoint"):
        read_torch_bin(tmp_path / "x.bin")


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    source = BIN / "fp32_single" / "pytorch_model.bin"
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    data_name = next(n for n in members if n.endswith("data/0"))
    members[data_name] = members[data_name][:8]  # the storage's bytes, truncated
    with zipfile.ZipFile(tmp_path / "x.bin", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    readers = read_torch_bin(tmp_path / "x.bin")
    with pytest.raises(UserError, match="x.bin: storage of"):
        for reader in readers.values():
            reader()


def test_a_tensor_with_an_impossible_shape_or_stride_is_refused(tmp_path):
    from emergence.models.torch_bin import _read_tensor, _rebuild_tensor, _Storage

    storage = _Storage("0", np.dtype(np.float32), 4)  # 16 bytes
    raw = np.zeros(16, np.uint8)
    with pytest.raises(UserError, match="x.bin: tensor 'w' has shape"):
        _read_tensor(tmp_path / "x.bin", "w", _rebuild_tensor(storage, 0, (-1, 4), (4, 1)), raw)
    with pytest.raises(UserError, match="x.bin: tensor 'w' reaches outside its storage"):
        _read_tensor(tmp_path / "x.bin", "w", _rebuild_tensor(storage, 1, (2, 2), (2, 1)), raw)
    with pytest.raises(UserError, match="x.bin: tensor 'w' reaches outside its storage"):
        _read_tensor(tmp_path / "x.bin", "w", _rebuild_tensor(storage, 3, (2,), (-1,)), raw)
    assert _read_tensor(tmp_path / "x.bin", "w", _rebuild_tensor(storage, 0, (2, 2), (1, 2)), raw).shape == (2, 2)
