"""First-fit-decreasing packing: every row once, no packed row over width, few rows, fixed shapes."""

from dataclasses import dataclass

import numpy as np

from emergence.eval.packing import first_fit_decreasing, pack_width, packed_batches


@dataclass(frozen=True)
class Row:
    tokens: tuple[int, ...]
    positions: tuple[int, ...]
    targets: tuple[tuple[int, ...], ...]


def test_every_row_lands_once_within_width_and_bins_are_nearly_full():
    lengths = list(np.random.default_rng(0).integers(5, 100, 500))
    bins = first_fit_decreasing(lengths, 128)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 128 for b in bins)
    lower_bound = -(-sum(lengths) // 128)
    assert len(bins) <= 1.1 * lower_bound + 1


def test_width_is_a_power_of_two_covering_the_longest_row():
    assert pack_width([3, 10]) == 64
    assert pack_width([65, 10]) == 128
    assert pack_width([200]) == 256


def test_batches_place_tokens_segments_positions_and_scored_slots():
    rows = [Row((1, 2, 3), (2,), ((7, 8),)), Row((4, 5), (0, 1), ((9,), (6,))), Row((6,) * 60, (59,), ((5, 4),))]
    (batch,) = packed_batches(rows, 64, batch_tokens=128)
    assert batch.tokens.shape == (2, 64) and batch.gather.shape[0] == 2
    for j, i in enumerate(batch.rows):
        r, slot = batch.placement[j]
        row = rows[i]
        # the row's tokens sit contiguously under one segment id, positions restarting at 0
        starts = [k for k in range(64) if batch.valid[r, k] and batch.positions[r, k] == 0]
        start = next(s for s in starts if tuple(batch.tokens[r, s:s + len(row.tokens)]) == row.tokens)
        assert list(batch.positions[r, start:start + len(row.tokens)]) == list(range(len(row.tokens)))
        assert len(set(batch.segments[r, start:start + len(row.tokens)])) == 1
        for p, cands in zip(row.positions, row.targets, strict=True):
            assert batch.gather[r, slot] == start + p
            assert list(batch.targets[r, slot, : len(cands)]) == list(cands)
            slot += 1
