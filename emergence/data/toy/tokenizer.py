"""A byte-level BPE trained on the toy corpus, wrapped as the project's :class:`TextTokenizer`.

A real tokenizer rather than a word list: the harness' tokenization contract (trailing whitespace of
a prompt moves to the continuation, the pair is encoded whole) then behaves on the toy tasks as it
does on the real ones, with " A" and " yes" single tokens and names split into sub-words. One
special token, ``<|endoftext|>``, separates documents and serves as BOS/EOS, as in GPT-2.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from emergence.models.tokenizer import TextTokenizer

EOS = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE over ``texts`` (deterministic for the same texts and size)."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    return backend


def wrap(backend: Tokenizer) -> TextTokenizer:
    """The project's tokenizer around a trained backend: EOS doubles as BOS, no BOS added by default
    (the evaluator prepends nothing, like the harness for GPT-2-style models)."""
    eos = backend.token_to_id(EOS)
    return TextTokenizer(backend, bos_token_id=eos, eos_token_ids=(eos,), pad_token_id=eos, add_bos=False)


def load(path: str) -> TextTokenizer:
    return wrap(Tokenizer.from_file(path))
