"""The harness' tokenization contract for (context, continuation) pairs, and left truncation.

lm-evaluation-harness (``TemplateLM._encode_pair``, causal models) scores a continuation as follows:
trailing whitespace of the context is moved to the front of the continuation (so " A" after
"Answer:" keeps its word-boundary token), the concatenation is encoded *whole*, and the
continuation's tokens are whatever follows the first ``len(encode(context))`` tokens. Encoding the
two halves separately can give different tokens at the seam (BPE merges across it), and different
log-likelihoods. An empty context is replaced by a single prefix token (BOS/EOS).

Inputs longer than the model's window are cut on the *left*: a loglikelihood request feeds
``(context + continuation)[-(max_length + 1):][:-1]``; a generation request keeps the last
``max_length - max_gen_toks`` context tokens.
"""

from __future__ import annotations

from typing import Any


def split_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace (``str.rstrip`` sense) to the continuation's front."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def encode_pair(
    encoder: Any, context: str, continuation: str, prefix_token_id: int | None = None
) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) exactly as the harness' causal ``_encode_pair``;
    ``encoder.encode(text)`` must add no special tokens. An empty context needs ``prefix_token_id``
    (the harness uses BOS, else EOS) and yields ``([prefix_token_id], encode(continuation))``."""
    if context == "":
        if prefix_token_id is None:
            raise ValueError("an empty context needs a prefix_token_id (BOS/EOS) to condition on")
        return [prefix_token_id], list(encoder.encode(continuation))
    context, continuation = split_trailing_whitespace(context, continuation)
    whole = list(encoder.encode(context + continuation))
    context_enc = list(encoder.encode(context))
    return context_enc, whole[len(context_enc) :]


def loglikelihood_inputs(
    context_enc: list[int], continuation_enc: list[int], max_length: int
) -> tuple[list[int], int]:
    """Model input for one pair and how many of its *last* positions predict the continuation.

    The input is ``(context + continuation)[-(max_length + 1):][:-1]`` (at most ``max_length``
    tokens); the logits at its last ``len(continuation_enc)`` positions score the continuation. A
    continuation longer than the window is itself cut (the harness scores what is left). An empty
    continuation (BPE merged it into the context's last token) scores 0 positions: log-likelihood 0.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    tokens = (context_enc + continuation_enc)[-(max_length + 1) :][:-1]
    return tokens, min(len(continuation_enc), len(tokens))


def generation_context(context_enc: list[int], max_length: int, max_gen_toks: int) -> list[int]:
    """The context tokens a generation request keeps: the last ``max_length - max_gen_toks``."""
    budget = max_length - max_gen_toks
    if budget < 1:
        raise ValueError(f"max_gen_toks ({max_gen_toks}) must be less than max_length ({max_length})")
    return context_enc[-budget:]
