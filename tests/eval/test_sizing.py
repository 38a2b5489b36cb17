"""How much evaluation work one device takes: today's fixed numbers on the CPU, memory-sized elsewhere,
set once as ``eval.batch_tokens`` / ``eval.generation_rows`` and never changing a score."""

import pytest

from emergence.config import load_config
from emergence.errors import UserError
from emergence.eval.evaluate import evaluate
from emergence.eval.sizing import generation_rows, scoring_batch_tokens
from emergence.models.config import LlamaConfig
from emergence.models.registry import load_model
from emergence.train.config import FinetuneFile
from tests.models.helpers import FIXTURES

GIB = 1 << 30
LLAMA_7B = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, dtype="bfloat16")
LLAMA_13B = LlamaConfig(vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                        num_attention_heads=40, num_key_value_heads=40, dtype="bfloat16")


def test_the_cpu_keeps_the_numbers_its_fixtures_were_made_with():
    assert scoring_batch_tokens(LLAMA_7B, 2048) == 2048
    assert generation_rows(LLAMA_7B, 1280) == 16


def test_on_an_accelerator_rows_are_what_half_the_free_memory_holds_in_kv_cache():
    # 7B in bf16 on an 80 GB device: ~66 GiB free after the weights; 0.625 GiB of cache per 1280-token row
    assert generation_rows(LLAMA_7B, 1280, free=66 * GIB) == 32
    assert generation_rows(LLAMA_13B, 1280, free=54 * GIB) == 16
    assert generation_rows(LLAMA_13B, 4096, free=54 * GIB) == 8  # longer rows, fewer of them
    assert generation_rows(LLAMA_13B, 4096, free=1 * GIB) == 1


def test_on_an_accelerator_scoring_tokens_grow_with_free_memory_within_bounds():
    small, large = (scoring_batch_tokens(LLAMA_7B, 2048, free=g * GIB) for g in (4, 16))
    assert 2048 <= small < large <= 65536
    assert all(n & (n - 1) == 0 for n in (small, large))
    assert scoring_batch_tokens(LLAMA_7B, 2048, free=1 << 20) == 2048
    assert scoring_batch_tokens(LLAMA_7B, 2048, free=1000 * GIB) == 65536


def test_the_settings_are_eval_keys_reaching_evaluate():
    run = load_config(FinetuneFile, None, ["eval.batch_tokens=512", "eval.generation_rows=2"])
    assert run.eval.options()["batch_tokens"] == 512 and run.eval.options()["generation_rows"] == 2
    assert {"batch_tokens", "generation_rows"} <= set(FinetuneFile().eval.options())
    with pytest.raises(UserError, match="generation_rows must be > 0"):
        load_config(FinetuneFile, None, ["eval.generation_rows=0"])


@pytest.mark.parametrize(("task", "sizes"), [
    ("cola", {"batch_tokens": 64}),
    ("commonsense_qa", {"batch_tokens": 128, "batch_size": 1}),
    ("gsm8k", {"generation_rows": 1}),
])
def test_batch_sizes_do_not_change_what_is_scored_or_generated(task, sizes):
    tiny = load_model(str(FIXTURES / "gqa_untied"))
    options = dict(shots=1, limit=4, data_dir=FIXTURES.parent / "benchmarks")
    default, resized = (evaluate(tiny, task, **options, **given).records for given in ({}, sizes))
    drop = lambda r: {k: v for k, v in r.items() if k != "loglikelihoods"}  # noqa: E731
    assert [drop(r) for r in resized] == [drop(r) for r in default]
    for a, b in zip(resized, default, strict=True):
        assert a.get("loglikelihoods", []) == pytest.approx(b.get("loglikelihoods", []), abs=1e-5)
