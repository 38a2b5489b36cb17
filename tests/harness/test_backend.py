"""The harness backend answers lm-eval's requests with our engine's numbers: each method is checked
against the engine's own entry points on a tiny model, through lm-eval's interface objects."""

import pytest

pytest.importorskip("lm_eval", reason="the harness extra: pip install -e '.[harness]'")

import numpy as np  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

from emergence.data.tasks import Request  # noqa: E402
from emergence.errors import UserError  # noqa: E402
from emergence.eval.loglikelihood import score_requests  # noqa: E402
from emergence.harness.backend import EmergenceLM  # noqa: E402
from emergence.models.generate import greedy_generate  # noqa: E402
from emergence.models.registry import load_model  # noqa: E402
from tests.eval.test_loglikelihood import _log_softmax, naive_loglikelihood  # noqa: E402
from tests.models.helpers import FIXTURES  # noqa: E402


@pytest.fixture(scope="module")
def lm():
    return EmergenceLM(loaded=load_model(str(FIXTURES / "gqa_untied")))


def instance(kind, args, doc_id=0, idx=0, task="t"):
    return Instance(kind, {}, args, idx, (task, doc_id, 1))


def test_it_is_registered_under_the_name_emergence():
    from lm_eval.api.registry import get_model

    assert get_model("emergence") is EmergenceLM


def test_loglikelihood_equals_our_scorer_and_the_definition(lm):
    context = "Question: What is 12 + 30?\nAnswer:"
    choices = (" 42", " 41", " forty-two")
    other = ("The capital of France is", " Paris")
    requests = [instance("loglikelihood", (context, c), doc_id=0, idx=i) for i, c in enumerate(choices)]
    requests.append(instance("loglikelihood", other, doc_id=1))
    out = lm.loglikelihood(requests)
    [ours] = score_requests(lm.loaded.model, lm.loaded.tokenizer, [Request("t", 0, context, 0, choices)])
    assert [ll for ll, _ in out[:3]] == list(ours.loglikelihoods)  # same rows, same numbers
    assert [g for _, g in out[:3]] == list(ours.is_greedy)
    assert out[3][0] == pytest.approx(naive_loglikelihood(lm.loaded, *other), abs=2e-4)


def naive_token_loglikelihood(loaded, context: list[int], continuation: list[int]) -> float:
    """log p(continuation | context) from one full forward over the tokens, no shortcut."""
    whole = context + continuation
    padded = np.zeros((1, loaded.config.max_position_embeddings), np.int32)
    padded[0, : len(whole) - 1] = whole[:-1]
    logprobs = np.asarray(_log_softmax(loaded.model, padded))[0]
    return float(sum(logprobs[p, whole[p + 1]] for p in range(len(context) - 1, len(whole) - 1)))


def test_rolling_loglikelihood_is_the_sum_over_the_harness_windows(lm):
    text = "The capital of France is Paris. " * 40
    tokens = lm.loaded.tokenizer.encode(text, add_bos=False)
    windows = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 1, lm.max_length, 1)]
    assert len(windows) > 1  # longer than the model's window
    expected = sum(naive_token_loglikelihood(lm.loaded, ctx, cont) for ctx, cont in windows)
    [total] = lm.loglikelihood_rolling([instance("loglikelihood_rolling", (text,))])
    assert total == pytest.approx(expected, abs=2e-3)
    short = "The capital of France is Paris."
    [one] = lm.loglikelihood_rolling([instance("loglikelihood_rolling", (short,))])
    assert one == pytest.approx(naive_loglikelihood(lm.loaded, "", short), abs=2e-4)  # BOS (id 1) as context


def test_generate_until_cuts_at_the_requests_own_stop_strings_and_lengths(lm):
    prompts = ["The capital of France is", "Question: What is 12 + 30?\nAnswer:"]
    kwargs = [{"until": ["\n"], "max_gen_toks": 12, "do_sample": False}, {"until": ["."], "max_gen_toks": 5}]
    requests = [instance("generate_until", (p, k), doc_id=i) for i, (p, k) in enumerate(zip(prompts, kwargs, strict=True))]
    out = lm.generate_until(requests)
    tok = lm.loaded.tokenizer
    for prompt, k, text in zip(prompts, kwargs, out, strict=True):
        [expected] = greedy_generate(lm.loaded.model, tok, [tok.encode(prompt, add_bos=False)],
                                     max_new_tokens=k["max_gen_toks"], stop=k["until"])
        assert text == expected.text


def test_sampling_is_refused_in_one_line(lm):
    request = instance("generate_until", ("Hi", {"until": ["\n"], "do_sample": True, "temperature": 0.7}))
    with pytest.raises(UserError, match="greedily"):
        lm.generate_until([request])
