"""Greedy generation ends where a full re-decode would, however the work is split between host and device."""

import numpy as np
import pytest

from emergence.models.generate import greedy_generate
from emergence.models.registry import load_model
from tests.models.helpers import FIXTURES


@pytest.fixture(scope="module")
def tiny():
    return load_model(str(FIXTURES / "gqa_untied"))


def _prompts(n=4, seed=3):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(3, 300, k)) for k in rng.integers(2, 9, n)]


def test_a_stop_sequence_ends_a_row_at_the_first_token_whose_full_decoding_contains_it(tiny):
    """Stops are looked for in the text each token adds, decoded from a short window; a row must still
    end at the first n with ``stop in decode(ids[:n])`` (byte-level tokens, stops across tokens)."""
    prompts = _prompts()
    free = greedy_generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=24, batch_size=4, stop_at_eos=False)
    stops = {g.text[i:i + size] for g in free for i in (0, 3, 7, 12) for size in (1, 2, 3, 5)} - {""}
    assert len(stops) > 10
    for stop in sorted(stops):
        cut = greedy_generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=24, batch_size=4, stop=[stop],
                              stop_at_eos=False)
        for whole, row in zip(free, cut, strict=True):
            ends = [n for n in range(1, len(whole.token_ids) + 1)
                    if stop in tiny.tokenizer.decode(list(whole.token_ids[:n]))]
            expected = whole.token_ids[:ends[0]] if ends else whole.token_ids
            assert row.token_ids == expected, stop
            assert row.finish == ("stop" if ends else "length")
            assert row.text == (whole.text[:whole.text.find(stop)] if ends else whole.text)


@pytest.mark.parametrize("sync_every", [3, 4])
def test_several_steps_per_host_round_trip_give_the_same_completions(tiny, sync_every):
    """What an accelerator runs (several decoding steps per look at the tokens) generates exactly what
    one step at a time does: rows that finished meanwhile drop their extra tokens, and the batch still
    shrinks."""
    prompts = _prompts(8, seed=5)
    stop = ["\x02", "\x04", "<unk>", "</s>", "b", "j"]
    eos = tiny.tokenizer.eos_token_ids
    for stop_at_eos in (False, True):
        kwargs = dict(max_new_tokens=14, batch_size=8, stop=stop, stop_at_eos=stop_at_eos)
        one, several = {}, {}
        each = greedy_generate(tiny.model, tiny.tokenizer, prompts, sync_every=1, stats=one, **kwargs)
        grouped = greedy_generate(tiny.model, tiny.tokenizer, prompts, sync_every=sync_every, stats=several, **kwargs)
        assert [(g.token_ids, g.text, g.finish) for g in grouped] == [(g.token_ids, g.text, g.finish) for g in each]
        assert several["shrinks"] >= 1 and one["new_tokens"] == several["new_tokens"]
        assert all(len(g.token_ids) <= 14 and not set(g.token_ids) & set(eos if stop_at_eos else ()) for g in grouped)
