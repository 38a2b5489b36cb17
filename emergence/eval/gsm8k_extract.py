"""GSM8K answer extraction and exact match, as lm-evaluation-harness 0.4.x ``gsm8k.yaml`` defines them.

Two filters turn a completion into an answer: ``strict-match`` takes the first ``#### <number>``
(the format the few-shot answers teach), ``flexible-extract`` the last number-like run; no match
gives ``"[invalid]"``. Exact match compares prediction and the dataset's full worked answer after
one normalization of both (``exact_match_hf_evaluate``: drop ``regexes_to_ignore`` in order, whose
``(?s).*#### `` reduces the reference to its final number, then lowercase; punctuation is kept).
"""

from __future__ import annotations

import re

STRICT_PATTERN = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
FALLBACK = "[invalid]"
REGEXES_TO_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")


def _regex_filter(text: str, pattern: re.Pattern[str], group_select: int) -> str:
    """The harness' ``RegexFilter.apply`` for one response."""
    matches = pattern.findall(text)
    if not matches:
        return FALLBACK
    match = matches[group_select]
    if isinstance(match, tuple):
        groups = [m for m in match if m]
        match = groups[0] if groups else FALLBACK
    return match.strip()


def strict_match(text: str) -> str:
    """The number after the first ``#### `` (with its sign, dots and commas), or ``[invalid]``."""
    return _regex_filter(text, STRICT_PATTERN, 0)


def flexible_extract(text: str) -> str:
    """The last number-like run in the completion (may carry ``$``, commas, a final ``.``), or ``[invalid]``."""
    return _regex_filter(text, FLEXIBLE_PATTERN, -1)


def normalize(text: str) -> str:
    """The gsm8k exact-match normalization, applied to predictions and references alike."""
    for pattern in REGEXES_TO_IGNORE:
        text = re.sub(pattern, "", text)
    return text.lower()


def exact_match(prediction: str, reference: str) -> bool:
    """Whether an *extracted* prediction equals the reference (a full gsm8k answer or a bare number)."""
    return normalize(prediction) == normalize(reference)


def score_completion(completion: str, reference: str) -> dict[str, bool]:
    """``{"em_strict": ..., "em_flexible": ...}`` for one raw completion (already cut at stop sequences)."""
    return {
        "em_strict": exact_match(strict_match(completion), reference),
        "em_flexible": exact_match(flexible_extract(completion), reference),
    }
