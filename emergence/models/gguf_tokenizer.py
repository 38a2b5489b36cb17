"""Rebuild a ``tokenizers`` tokenizer from GGUF metadata (llama.cpp's ``tokenizer.ggml.*`` keys).

llama.cpp stores a vocabulary, merges (BPE) or scores (SentencePiece), token types and a named
pre-tokenizer (``tokenizer.ggml.pre``). transformers can only do this conversion with PyTorch
installed, so it is done here with ``tokenizers`` directly:

* ``gpt2`` (byte-level BPE: SmolLM2, LLaMA-3): vocab + merges; the pre-tokenizer is chosen from
  ``tokenizer.ggml.pre`` (``smollm`` splits digits one by one before the GPT-2 regex; ``llama-bpe``
  uses the LLaMA-3 regex). Unknown names fall back to plain GPT-2 byte level, with a warning.
* ``llama`` (SentencePiece BPE: LLaMA-1/2, TinyLlama, OpenLLaMA): merges are rebuilt from the piece
  scores the way transformers' SentencePiece extractor does, with byte fallback and "▁" spaces.

Control and user-defined tokens become added tokens, so "<|im_end|>" stays one token.
"""

from __future__ import annotations

import sys
from typing import Any

from gguf import TokenType
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from emergence.errors import UserError

_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level_pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact"):
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if pre in ("llama-bpe", "llama3", "llama-v3"):
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_LLAMA3_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    if pre not in ("gpt2", "default", ""):
        print(f"warning: GGUF pre-tokenizer {pre!r} is not known; using GPT-2 byte-level rules", file=sys.stderr)
    return byte_level


def _spm_merges(vocab: dict[str, int], scores: list[float]) -> list[tuple[str, str]]:
    """Merges implied by SentencePiece scores: every split of a piece into two known pieces, ranked by
    the merged piece's score (higher first), ties by the pieces' ids."""
    ranked = []
    for piece, piece_id in vocab.items():
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                ranked.append((-scores[piece_id], vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _spm_normalizer(fields: dict[str, Any]) -> normalizers.Normalizer:
    """SentencePiece's normalization in its order: the precompiled character map, whitespace
    trimmed and collapsed (``remove_extra_whitespaces``: OpenLLaMA), the dummy prefix, "▁" spaces."""
    steps = []
    charsmap = fields.get("tokenizer.ggml.precompiled_charsmap")
    if charsmap:
        steps.append(normalizers.Precompiled(bytes(b & 0xFF for b in charsmap)))
    if fields.get("tokenizer.ggml.remove_extra_whitespaces", False):
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if fields.get("tokenizer.ggml.add_space_prefix", True):
        steps.append(normalizers.Prepend("▁"))
    return normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])


def backend_from_gguf(fields: dict[str, Any], source: str) -> Tokenizer:
    """The ``tokenizers`` backend; ``fields`` maps GGUF keys to decoded values (lists for arrays).
    (:func:`emergence.models.tokenizer.tokenizer_from_gguf` adds the special ids around it.)"""
    kind = fields.get("tokenizer.ggml.model")
    tokens: list[str] | None = fields.get("tokenizer.ggml.tokens")
    if kind is None or tokens is None:
        raise UserError(f"{source}: no tokenizer in the GGUF metadata (tokenizer.ggml.model/tokens)")
    types: list[int] = fields.get("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(tokens)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    unk_id = fields.get("tokenizer.ggml.unknown_token_id")

    if kind == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges", [])]
        backend = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
        backend.pre_tokenizer = _byte_level_pre_tokenizer(str(fields.get("tokenizer.ggml.pre", "default")))
        backend.decoder = decoders.ByteLevel()
    elif kind == "llama":
        scores = fields.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
        unk = tokens[unk_id] if unk_id is not None else "<unk>"
        backend = Tokenizer(
            models.BPE(vocab, _spm_merges(vocab, scores), unk_token=unk, fuse_unk=True, byte_fallback=True)
        )
        backend.normalizer = _spm_normalizer(fields)
        space_prefix = fields.get("tokenizer.ggml.add_space_prefix", True)  # Gemma: no dummy prefix
        backend.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
            + ([decoders.Strip(" ", 1, 0)] if space_prefix else [])
        )
    else:
        raise UserError(f"{source}: tokenizer type {kind!r} is not supported (gpt2 or llama)")

    specials = [
        AddedToken(tok, special=types[i] == TokenType.CONTROL, normalized=False)
        for i, tok in enumerate(tokens)
        if types[i] in (TokenType.CONTROL, TokenType.USER_DEFINED)
    ]
    backend.add_special_tokens([t for t in specials if t.special])
    backend.add_tokens([t for t in specials if not t.special])
    return backend
