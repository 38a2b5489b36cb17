"""A model file shipped in part wheels is assembled once into the cache, and only if its sha256 is the pinned one."""

import hashlib

import pytest

from emergence.errors import UserError
from emergence.models.assembled import assembled_file

CHUNKS = [b"GGUF", b"-first-half-", b"second half"]


@pytest.fixture()
def split_package(tmp_path, monkeypatch):
    """``fakemodel_part1..3`` on sys.path, each holding one chunk of ``model.gguf``."""
    for index, chunk in enumerate(CHUNKS, start=1):
        data = tmp_path / "site" / f"fakemodel_part{index}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"model.gguf.part{index - 1:02d}").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("EMERGENCE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_parts_are_concatenated_in_order_into_the_cache(split_package):
    whole = b"".join(CHUNKS)
    path = assembled_file("fakemodel", "model.gguf", hashlib.sha256(whole).hexdigest(), "pip install fakemodel")
    assert path == split_package / "cache" / "model.gguf" and path.read_bytes() == whole


def test_a_wrong_checksum_leaves_nothing_behind(split_package):
    with pytest.raises(UserError, match="model.gguf: the 3 parts assemble to sha256 .* expected 00+; reinstall with: pip install fakemodel"):
        assembled_file("fakemodel", "model.gguf", "0" * 64, "pip install fakemodel")
    assert list((split_package / "cache").iterdir()) == []


def test_missing_part_wheels_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EMERGENCE_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="part wheels are not installed; install them with: pip install nothing"):
        assembled_file("nothing_here", "model.gguf", "0" * 64, "pip install nothing")
