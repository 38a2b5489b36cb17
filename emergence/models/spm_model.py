"""SentencePiece ``tokenizer.model`` files read without sentencepiece or protobuf.

The file is one protobuf ``ModelProto``; we read the few fields a BPE tokenizer needs (pieces with
their scores and types, the model type, the special ids, the normalizer's dummy prefix, whitespace
collapsing and precompiled character map) and return them under llama.cpp's GGUF tokenizer keys,
so that one builder (:func:`emergence.models.gguf_tokenizer.backend_from_gguf`) serves both a
GGUF's tokenizer and a ``tokenizer.model`` (OpenLLaMA, LLaMA-1/2, Gemma). Field numbers are those
of sentencepiece's ``sentencepiece_model.proto``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from emergence.errors import UserError

_BPE = 2


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of one message: varints as ints, everything else as raw bytes."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at:at + size], at + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at:at + size], at + size
        else:
            raise ValueError(f"wire type {wire}")
        out.append((number, value))
    if at != len(data):
        raise ValueError("truncated message")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def read_spm(path: str | Path) -> dict[str, Any]:
    """The tokenizer of a SentencePiece BPE ``tokenizer.model``, as GGUF ``tokenizer.ggml.*`` fields."""
    path = Path(path)
    try:
        model = _fields(path.read_bytes())
        tokens, scores, types = [], [], []
        trainer: dict[int, Any] = {}
        normalizer: dict[int, Any] = {}
        for number, value in model:
            if number == 1:
                piece = dict(_fields(value))
                tokens.append(piece[1].decode("utf-8"))
                scores.append(struct.unpack("<f", piece[2])[0] if 2 in piece else 0.0)
                types.append(piece.get(3, 1))
            elif number == 2:
                trainer = dict(_fields(value))
            elif number == 3:
                normalizer = dict(_fields(value))
    except (OSError, ValueError, IndexError, KeyError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable SentencePiece model ({err})") from None
    if trainer.get(3, 1) != _BPE:
        raise UserError(f"{path}: only SentencePiece BPE models are supported (this one is not BPE)")
    def special(number: int, default: int) -> int | None:
        value = _signed(trainer.get(number, default))
        return value if value >= 0 else None

    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.unknown_token_id": special(40, 0),
        "tokenizer.ggml.bos_token_id": special(41, 1),
        "tokenizer.ggml.eos_token_id": special(42, 2),
        "tokenizer.ggml.padding_token_id": special(43, (1 << 64) - 1),
        "tokenizer.ggml.add_space_prefix": bool(normalizer.get(3, 1)),
        "tokenizer.ggml.remove_extra_whitespaces": bool(normalizer.get(4, 1)),
        "tokenizer.ggml.precompiled_charsmap": normalizer.get(2) or None,
    }
