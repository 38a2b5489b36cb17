"""The tokenizer every model carries: a ``tokenizers.Tokenizer`` plus the special ids we rely on.

The fast ``tokenizers`` object itself, not a transformers wrapper, because the evaluator's contract
is plain ``encode(text)`` *without* special tokens, as lm-evaluation-harness' HF backend does; BOS is
added explicitly where a model wants it. Saved files are ones transformers' ``AutoTokenizer`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from emergence.errors import UserError
from emergence.fileio import read_json_object


@dataclass(frozen=True)
class TextTokenizer:
    """Text ↔ token ids for one model."""

    backend: Tokenizer
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    add_bos: bool = False
    chat_template: str | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def max_id(self) -> int:
        """The largest token id the tokenizer can produce: what must fit the embedding table (a
        vocabulary with gaps has fewer tokens than its largest id + 1, so the count is not enough)."""
        ids = self.backend.get_vocab(with_added_tokens=True).values()
        return max(ids, default=-1)

    def encode(self, text: str, *, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text`` with no special tokens (BOS only when asked or the model wants it)."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        want_bos = self.add_bos if add_bos is None else add_bos
        if want_bos and self.bos_token_id is not None:
            return [self.bos_token_id, *ids]
        return ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.backend.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=False)

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / "tokenizer.json"))
        token = self.backend.id_to_token
        names = {
            "bos_token": token(self.bos_token_id) if self.bos_token_id is not None else None,
            "eos_token": token(self.eos_token_ids[0]) if self.eos_token_ids else None,
            "pad_token": token(self.pad_token_id) if self.pad_token_id is not None else None,
        }
        names.update({k: v for k, v in self.special_tokens.items() if k not in names or names[k] is None})
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1_000_000_000,
            **{k: v for k, v in names.items() if v is not None},
        }
        if self.chat_template:
            config["chat_template"] = self.chat_template
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
        (directory / "special_tokens_map.json").write_text(
            json.dumps({k: v for k, v in names.items() if v is not None}, indent=2, ensure_ascii=False)
        )

    @classmethod
    def from_directory(
        cls, directory: str | Path, model_config: dict[str, Any] | None = None
    ) -> TextTokenizer:
        """Load from an HF model directory: tokenizer.json, or a SentencePiece tokenizer.model."""
        directory = Path(directory)
        config_file = directory / "tokenizer_config.json"
        config = read_json_object(config_file, "tokenizer config") if config_file.exists() else {}
        model_config = model_config or {}
        if (directory / "tokenizer.json").exists():
            try:
                backend = Tokenizer.from_file(str(directory / "tokenizer.json"))
            except Exception as err:  # noqa: BLE001 - the tokenizers library raises a bare Exception
                raise UserError(
                    f"{directory / 'tokenizer.json'}: not a readable tokenizer ({' '.join(str(err).split())})"
                ) from None
        elif (directory / "tokenizer.model").exists():
            # SentencePiece only (OpenLLaMA, LLaMA-1/2): read directly and rebuilt as a fast BPE, as a
            # GGUF's SentencePiece tokenizer is
            from emergence.models.gguf_tokenizer import backend_from_gguf
            from emergence.models.spm_model import read_spm

            spm = directory / "tokenizer.model"
            backend = backend_from_gguf(read_spm(spm), str(spm))
        else:
            raise UserError(
                f"{directory}: no tokenizer (tokenizer.json or tokenizer.model) in the model directory"
            )

        specials = {
            k: (v["content"] if isinstance(v, dict) else v)
            for k, v in config.items()
            if k.endswith("_token") and isinstance(v, (str, dict))
        }

        def token_id(name: str) -> int | None:
            value = specials.get(name)
            return backend.token_to_id(value) if isinstance(value, str) else None

        bos = token_id("bos_token")
        if bos is None:
            bos = model_config.get("bos_token_id")
        eos_cfg = model_config.get("eos_token_id")
        eos = [token_id("eos_token")]
        eos += eos_cfg if isinstance(eos_cfg, list) else [eos_cfg]
        eos_ids = tuple(dict.fromkeys(e for e in eos if e is not None))
        pad = token_id("pad_token")
        add_bos = bool(config.get("add_bos_token", _post_processor_adds_bos(backend)))
        return cls(backend, bos, eos_ids, pad, add_bos, config.get("chat_template"), specials)


def tokenizer_from_gguf(fields: dict[str, Any], source: str) -> TextTokenizer:
    """The tokenizer a GGUF file's metadata describes (``fields``: GGUF keys to decoded values):
    :func:`~emergence.models.gguf_tokenizer.backend_from_gguf` and the special ids around it."""
    from emergence.models.gguf_tokenizer import backend_from_gguf  # imports gguf: only when asked

    eos = fields.get("tokenizer.ggml.eos_token_id")
    eot = fields.get("tokenizer.ggml.eot_token_id")
    return TextTokenizer(
        backend=backend_from_gguf(fields, source),
        bos_token_id=fields.get("tokenizer.ggml.bos_token_id"),
        eos_token_ids=tuple(dict.fromkeys(i for i in (eos, eot) if i is not None)),
        pad_token_id=fields.get("tokenizer.ggml.padding_token_id"),
        add_bos=bool(fields.get("tokenizer.ggml.add_bos_token", fields.get("tokenizer.ggml.model") == "llama")),
        chat_template=fields.get("tokenizer.chat_template"),
    )


def _post_processor_adds_bos(backend: Tokenizer) -> bool:
    """Whether the tokenizer's own post-processor prepends a BOS (LLaMA-2/3 style TemplateProcessing)."""
    with_special = backend.encode("a", add_special_tokens=True).ids
    without = backend.encode("a", add_special_tokens=False).ids
    return len(with_special) > len(without) and with_special[-len(without) :] == without

