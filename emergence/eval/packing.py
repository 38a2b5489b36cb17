"""Pack short scoring rows into fixed-width rows, several sequences per row.

Why: 0-shot multiple-choice prompts are short and of uneven length; padding each to a length bucket
wastes much of the forward pass, and every bucket is one more compilation. Packed back to back, with
the model's ``segments`` mask and positions restarting per sequence, every sequence gets the logits
it would get alone (``tests/models/test_kv_cache.py``) and an evaluation compiles one or two programs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emergence.models.generate import next_pow2

#: Rows longer than this are not packed (attention over a wide packed row costs more than padding).
PACK_MAX_WIDTH = 256
PACK_MIN_WIDTH = 64


@dataclass(frozen=True)
class PackedBatch:
    """Device-ready arrays for ``bins`` packed rows, and where each scoring row landed."""

    rows: tuple[int, ...]  # indices of the scoring rows in this batch
    placement: tuple[tuple[int, int], ...]  # per row: (packed row, first slot of its scored positions)
    tokens: np.ndarray  # [R, W] int32
    valid: np.ndarray  # [R, W] bool
    positions: np.ndarray  # [R, W] int32, restarting at 0 per sequence
    segments: np.ndarray  # [R, W] int32, 1.. per sequence, 0 = padding
    gather: np.ndarray  # [R, P] int32: scored positions, sequence after sequence
    targets: np.ndarray  # [R, P, K] int32


def pack_width(lengths: Sequence[int]) -> int:
    """The packed row width for rows of these lengths: a power of two between the bounds."""
    longest = max(lengths)
    return max(PACK_MIN_WIDTH, next_pow2(longest))


def first_fit_decreasing(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Bins (lists of indices into ``lengths``) of total length ≤ ``width``; lengths ≤ width.

    Best fit by free space: a row goes into the bin with the least room that still fits it, found
    by scanning at most ``width`` free-space values, so packing 10^4 rows stays fast."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    by_free: dict[int, list[int]] = {}  # free space -> bins with exactly that much room
    for i in order:
        need = lengths[i]
        target = next((free for free in range(need, width + 1) if by_free.get(free)), None)
        if target is None:
            bins.append([])
            b, free = len(bins) - 1, width
        else:
            b, free = by_free[target].pop(), target
        bins[b].append(i)
        by_free.setdefault(free - need, []).append(b)
    return bins


def packed_batches(rows: Sequence, width: int, batch_tokens: int) -> list[PackedBatch]:
    """Pack scoring ``rows`` (``tokens``, scored ``positions`` and their candidate ``targets``; each
    at most ``width`` tokens) into batches of about ``batch_tokens`` tokens.

    Every batch has the same ``[R, W]``, ``P`` and ``K``, except a smaller last one (rounded up to a
    power of two rows), so one evaluation compiles at most two programs."""
    bins = first_fit_decreasing([len(r.tokens) for r in rows], width)
    per_batch = max(1, batch_tokens // width)
    n_pos = next_pow2(max(sum(len(rows[i].positions) for i in b) for b in bins))
    n_cand = next_pow2(max(len(t) for r in rows for t in r.targets))
    batches = []
    for start in range(0, len(bins), per_batch):
        chunk = bins[start:start + per_batch]
        n_rows = per_batch if len(chunk) == per_batch else next_pow2(len(chunk))
        batches.append(fill_bins(rows, chunk, n_rows, width, n_pos, n_cand))
    return batches


def fill_bins(rows, bins, n_rows, width, n_pos, n_cand) -> PackedBatch:
    """Zero-padded ``[n_rows, width]`` arrays holding ``rows[i]`` for each ``i`` of each bin, back to
    back; a bin of one row is an ordinary right-padded row."""
    tokens = np.zeros((n_rows, width), np.int32)
    valid = np.zeros((n_rows, width), bool)
    positions = np.zeros((n_rows, width), np.int32)
    segments = np.zeros((n_rows, width), np.int32)
    gather = np.zeros((n_rows, n_pos), np.int32)
    targets = np.zeros((n_rows, n_pos, n_cand), np.int32)
    members, placement = [], []
    for r, members_of_bin in enumerate(bins):
        start, slot = 0, 0
        for seg, i in enumerate(members_of_bin, start=1):
            row = rows[i]
            n = len(row.tokens)
            tokens[r, start:start + n] = row.tokens
            valid[r, start:start + n] = True
            positions[r, start:start + n] = np.arange(n)
            segments[r, start:start + n] = seg
            members.append(i)
            placement.append((r, slot))
            for p, cands in zip(row.positions, row.targets, strict=True):
                gather[r, slot] = start + p
                targets[r, slot, : len(cands)] = cands
                slot += 1
            start += n
    return PackedBatch(tuple(members), tuple(placement), tokens, valid, positions, segments, gather, targets)
