"""Bounded process-wide caches: the compiled templates and tokenizations a sweep reuses across cells."""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")


def remember(cache: dict, key, value: V, limit: int) -> V:
    """Store ``value`` under a new ``key``, first dropping the oldest entry when ``cache`` already
    holds ``limit``: a long sweep meets many checkpoints and configs, and each cache keeps only the
    few it is using."""
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value
