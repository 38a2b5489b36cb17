"""Bounded process-wide caches: the compiled templates and tokenizations a sweep reuses across cells."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

V = TypeVar("V")


def remember(cache: dict, key, make: Callable[[], V], limit: int) -> V:
    """The value under ``key``, made by ``make()`` and stored if absent, dropping the oldest entry
    when ``cache`` already holds ``limit``: a long sweep meets many checkpoints and configs, and each
    cache keeps only the few it is using."""
    if key in cache:
        return cache[key]
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value = make()
    return value
