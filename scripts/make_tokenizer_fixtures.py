"""Regenerate the tokenizer parity fixtures: tiny SentencePiece BPE models and a GPT-NeoX-style
tokenizer.json, with the reference ids of a fixed text set.

Run in the bench environment (sentencepiece and transformers are never runtime dependencies):

    .venv-bench/bin/python scripts/make_tokenizer_fixtures.py

Writes ``tests/fixtures/tokenization/<variant>/`` (``tokenizer.model`` or ``tokenizer.json``) and
``tests/fixtures/tokenization/reference.json`` (variant → text → ids). SentencePiece variants, as
the families use them: ``spm_llama`` (dummy prefix, byte fallback: LLaMA-1/2), ``spm_gemma`` (no
dummy prefix, user-defined turn markers), ``spm_openllama`` (whitespace collapsed and a precompiled
character map, as OpenLLaMA's NFKC-normalizing model does; a small custom rule set keeps it small).
Their ids come from sentencepiece itself; the GPT-NeoX ones from transformers'
``GPTNeoXTokenizerFast``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import GPTNeoXTokenizerFast

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tokenization"
CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Question: What is 12 + 30?\nAnswer: 42",
    "Emergence: few-shot accuracy jumps once the pretraining loss is low enough.",
    "def square(x):\n    return x * x  # the square of x",
    "Über café naïve Straße, 東京 and ﬁne ＡＢＣ text.",
    "Numbers 3.14159 and 2026-12-05; lists: a, b, c.",
] * 30
TEXTS = [
    "Hello world",
    "The capital of France is",
    " leading space and  double  spaces ",
    "Tabs\tand\nnew lines\n\n",
    "Numbers: 3.14159, 2026-12-05, 1,000,000",
    "Ünïcödé: café, naïve, Straße, 東京, 🙂",
    "ﬁne ＡＢＣ　wide",
    "def f(x):\n    return x ** 2  # square",
    "<start_of_turn>user\nHi<end_of_turn>",
    "",
]
SPM_VARIANTS = {
    "spm_llama": dict(add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity"),
    "spm_gemma": dict(add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
                      user_defined_symbols=["<start_of_turn>", "<end_of_turn>"]),
    "spm_openllama": dict(add_dummy_prefix=True, remove_extra_whitespaces=True),
}
#: A few NFKC-style rules (source code points → target code points): ligature, full-width letters,
#: ideographic space and tab to a space.
RULES = "FB01\t66 69\nFF21\t41\nFF22\t42\nFF23\t43\n3000\t20\n9\t20\n"


def spm_variant(name: str, options: dict, workdir: Path) -> dict[str, list[int]]:
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    extra = {}
    if "normalization_rule_name" not in options:
        rules = workdir / "rules.tsv"
        rules.write_text(RULES)
        extra["normalization_rule_tsv"] = str(rules)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(workdir / name), model_type="bpe", vocab_size=400, byte_fallback=True,
        character_coverage=1.0, split_digits=True, bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
        **options, **extra,
    )
    target = OUT / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "tokenizer.model").write_bytes((workdir / f"{name}.model").read_bytes())
    processor = spm.SentencePieceProcessor(model_file=str(target / "tokenizer.model"))
    return {text: processor.encode(text) for text in TEXTS}


def neox_variant() -> dict[str, list[int]]:
    """A BPE built like GPT-NeoX's tokenizer.json (NFC, byte level, two added specials)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    target = OUT / "neox"
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPTNeoXTokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>", "add_bos_token": False, "add_eos_token": False}, indent=2) + "\n")
    reference = GPTNeoXTokenizerFast.from_pretrained(str(target))
    return {text: reference(text).input_ids for text in TEXTS}


def main() -> None:
    reference: dict[str, dict[str, list[int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in SPM_VARIANTS.items():
            reference[name] = spm_variant(name, options, Path(tmp))
    reference["neox"] = neox_variant()
    (OUT / "reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n")
    for name in reference:
        size = sum(f.stat().st_size for f in (OUT / name).iterdir())
        print(f"{name}: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
