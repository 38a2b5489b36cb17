"""Our JAX model as an lm-evaluation-harness model: ``EmergenceLM``, registered as ``emergence``.

The harness hands a model every request of a run at once (``loglikelihood``,
``loglikelihood_rolling``, ``generate_until``); each method passes the whole list to our engine, so
requests are batched as our evaluator batches them: the (context, continuation) pairs of one
document become one request of the packed, prefix-sharing scorer (choices one token after the same
context are read from one row), and generations run longest first through the KV-cache sampler,
one call per distinct (``until``, ``max_gen_toks``). Tokenization follows the harness' causal
contract (:mod:`emergence.eval.tokenization`), so scores agree with its HF backend on the same
weights.

Only this package imports ``lm_eval`` (and, through it, torch); the core package reaches it lazily
when a harness task is named. lm-eval 0.4 finds models in its own registry only (no entry points),
so importing this module is what makes ``--model emergence`` known: ``python -m emergence.harness``
is the ``lm_eval`` command with it imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from emergence.errors import UserError
from emergence.eval.evaluate import generate
from emergence.eval.loglikelihood import encode_requests, prefix_token_id, score_encoded
from emergence.models.registry import LoadedModel

DEFAULT_MAX_GEN_TOKS = 256  # the harness' default when a task sets none


@register_model("emergence")
class EmergenceLM(LM):
    """``pretrained``: a model reference (HF directory, .gguf, alias, hub id); ``adapter``: a
    finetuning output directory; or ``loaded``: a model already in memory (a sweep's cell).
    ``batch_size`` caps rows per batch as in ``emergence eval``; ``batch_tokens`` and
    ``generation_rows`` default to the backend's sizing. Other harness keywords (``device``,
    ``max_batch_size``) do not apply to a JAX model and are ignored."""

    def __init__(
        self,
        pretrained: str | None = None,
        adapter: str | None = None,
        *,
        loaded: LoadedModel | None = None,
        batch_size: int | str = 64,
        batch_tokens: int | None = None,
        generation_rows: int | None = None,
        dtype: str | None = None,
        param_dtype: str | None = None,
        **_ignored: Any,
    ) -> None:
        super().__init__()
        if loaded is None:
            if pretrained is None:
                raise UserError("the emergence harness model needs pretrained=MODEL (or a loaded model)")
            loaded = _load(str(pretrained), adapter, dtype, param_dtype)
        self.loaded = loaded
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 64  # "auto": our own sizing
        self.batch_tokens = int(batch_tokens) if batch_tokens else None
        self.generation_rows = int(generation_rows) if generation_rows else None

    @property
    def max_length(self) -> int:
        return self.loaded.config.max_position_embeddings

    @property
    def tokenizer_name(self) -> str:
        return self.loaded.meta.name

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log p(continuation | context), whether greedy decoding gives it) per request: the
        requests of one document with one context become one request of our scorer."""
        from emergence.data.tasks import Request

        merged: dict[tuple, list[int]] = {}
        for i, instance in enumerate(requests):
            context, _ = instance.args
            merged.setdefault((instance.task_name, instance.doc_id, context), []).append(i)
        ours = [Request(str(task), int(doc or 0), context, 0, tuple(requests[i].args[1] for i in members),
                        group=str(task))
                for (task, doc, context), members in merged.items()]
        scores = self._score(encode_requests(self.loaded.tokenizer, ours), [r.group for r in ours])
        out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for members, score in zip(merged.values(), scores, strict=True):
            for k, i in enumerate(members):
                out[i] = (score.loglikelihoods[k], score.is_greedy[k])
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Each string's total log-likelihood over disjoint windows of the model's length (the
        harness' own windowing), all windows of all strings scored together."""
        windows, owner = [], []
        for i, instance in enumerate(requests):
            (text,) = instance.args
            tokens = self.loaded.tokenizer.encode(text, add_bos=False)
            for window in get_rolling_token_windows(tokens, prefix_token_id(self.loaded.tokenizer),
                                                    self.max_length, context_len=1):
                windows.append([make_disjoint_window(window)])
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, score in zip(owner, self._score(windows, [None] * len(windows)), strict=True):
            totals[i] += score.loglikelihoods[0]
        return totals

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy completions, each cut at the first of its ``until`` strings (EOS included, as the
        harness adds it) or after ``max_gen_toks`` tokens; sampling is refused (our sampler is greedy)."""
        eos = self.loaded.tokenizer.decode(list(self.loaded.tokenizer.eos_token_ids[:1]))
        calls: dict[tuple, list[int]] = {}
        for i, instance in enumerate(requests):
            kwargs = normalize_gen_kwargs(instance.args[1], DEFAULT_MAX_GEN_TOKS)
            if kwargs.get("do_sample"):
                raise UserError(f"{instance.task_name}: asks for sampling; the emergence model decodes greedily only")
            until = tuple(handle_stop_sequences(kwargs.get("until"), eos=eos or None))
            calls.setdefault((until, int(kwargs["max_gen_toks"])), []).append(i)
        out = [""] * len(requests)
        for (until, max_gen_toks), members in calls.items():
            generations = generate(self.loaded, [requests[i].args[0] for i in members], until, max_gen_toks,
                                   batch_size=self.batch_size, generation_rows=self.generation_rows)
            for i, generation in zip(members, generations, strict=True):
                out[i] = generation.text
        return out

    def _score(self, encoded: Sequence, groups: Sequence[str | None]):
        return score_encoded(self.loaded.model, encoded, groups, batch_size=self.batch_size,
                             batch_tokens=self.batch_tokens, max_length=self.max_length)


def _load(pretrained: str, adapter: str | None, dtype: str | None, param_dtype: str | None) -> LoadedModel:
    from emergence.models.registry import load_model
    from emergence.train.config import precision

    dtype, param_dtype = precision("none", dtype, param_dtype)
    loaded = load_model(pretrained, dtype=dtype, param_dtype=param_dtype)
    if adapter:
        from emergence.train.adapters import load_adapter

        loaded = load_adapter(loaded, adapter)
    return loaded
