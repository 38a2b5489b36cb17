"""Work goes out by whole checkpoints: contiguous blocks per shard or worker, leftovers taken from the end."""

from __future__ import annotations

from emergence.sweep.assign import blocks, checkpoint_groups, format_assignment, preference, shard
from emergence.sweep.config import load_sweep_config
from emergence.sweep.plan import LossCell, expand
from tests.sweep.helpers import PAPER_CONFIG, TINY_CONFIG


def test_shards_partition_the_plan_into_whole_checkpoints():
    cells = expand(load_sweep_config(TINY_CONFIG))
    for count in (1, 2, 3):
        parts = [shard(cells, i, count) for i in range(count)]
        assert sorted(c.key for p in parts for c in p) == sorted(c.key for c in cells)
        owners = [{c.checkpoint_id for c in p} for p in parts]
        assert sum(len(o) for o in owners) == 2  # each checkpoint in exactly one shard
    first, second = (shard(cells, i, 2) for i in range(2))
    assert {c.checkpoint_id for c in first} == {"tiny-tied"} and {c.checkpoint_id for c in second} == {
        "tiny-untied"
    }


def test_a_group_is_one_checkpoint_led_by_its_loss_cell():
    groups = checkpoint_groups(expand(load_sweep_config(TINY_CONFIG)))
    assert [g.checkpoint_id for g in groups] == ["tiny-tied", "tiny-untied"]
    for group in groups:
        assert isinstance(group.cells[0], LossCell) and len(group.cells) == 6
        assert {c.checkpoint_id for c in group.cells} == {group.checkpoint_id}
        assert group.claim_name == f"ckpt-{group.cells[0].key}"


def test_blocks_are_contiguous_and_balanced_by_cost():
    cfg = load_sweep_config(PAPER_CONFIG)
    groups = checkpoint_groups(expand(cfg))
    owned = blocks(groups, 8)
    assert [g for b in owned for g in b] == list(range(len(groups)))  # contiguous, in plan order
    cost = [sum(c.est_flops for c in g.cells[1:]) for g in groups]  # FLOPs: every cell has an estimate
    share = sum(cost) / 8
    for block in owned:  # each block's cost is within one checkpoint of an even share
        assert block and abs(sum(cost[g] for g in block) - share) <= max(cost)
    assert len(owned[0]) > len(owned[-1])  # small (3B) checkpoints first: more of them per block
    assert blocks(groups[:2], 4) == [[0], [1], [], []]  # more workers than checkpoints: one each


def test_a_worker_starts_at_its_own_block_then_takes_the_end_of_the_fullest_other_block():
    owned = [[0, 1, 2], [3, 4, 5], [6, 7]]
    everything = dict.fromkeys(range(8), 5)
    assert preference(owned, 1, everything)[:3] == [3, 4, 5]
    # worker 2's block is done; block 0 has more open cells than block 1: take block 0 from its end,
    # then block 1's; the checkpoints the owners work on now (0 and 3) only last
    left = {0: 5, 1: 5, 2: 5, 3: 1, 5: 2}
    assert preference(owned, 2, left) == [2, 1, 5, 0, 3]


def test_the_assignment_names_every_workers_checkpoints():
    text = format_assignment(expand(load_sweep_config(TINY_CONFIG)), 4)
    assert "worker 0: 1 checkpoints, 5 cells" in text and text.split("worker 1:")[1].startswith(
        " 1 checkpoints"
    )
    assert text.count("tiny-tied") == 1 and text.count("tiny-untied") == 1
    assert text.count("takes checkpoints from the others") == 2
