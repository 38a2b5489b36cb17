"""Which runner works on which cells: whole checkpoints, so N workers load each checkpoint about once.

A checkpoint's cells share one loaded model, and loading a 7B checkpoint takes minutes, so work is
handed out by checkpoint, never cell by cell. The plan's checkpoints are cut into ``n`` contiguous
blocks of about equal estimated cost (FLOPs where every cell has an estimate, else cell counts).
``--shard i/n`` runs block ``i`` and nothing else. Worker ``i`` of ``n`` (``--worker``, the launcher,
SLURM array tasks) starts at the first checkpoint of its own block and, once its block is done,
takes whole checkpoints from the others: the *last* unclaimed checkpoint of the block with the most
open cells, far from where that block's owner works (:func:`preference`). A runner holds a checkpoint's claim
(``ckpt-<key>.lock``, the loss cell's key) while it works on its cells, so no two runners load one
checkpoint at the same time; a dead runner's checkpoint claim goes stale like a cell's and its
checkpoint is taken over. Cell keys, records and the results table do not depend on who ran a cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from emergence.sweep.plan import Cell, LossCell, with_loss_cells


@dataclass(frozen=True)
class CheckpointGroup:
    checkpoint_id: str
    key: str  # the checkpoint's loss-cell key: names its claim
    cells: tuple[LossCell | Cell, ...]  # the loss cell, then the task cells in plan order

    @property
    def claim_name(self) -> str:
        return f"ckpt-{self.key}"


def checkpoint_groups(cells: list[Cell]) -> list[CheckpointGroup]:
    """The cells grouped by checkpoint, in plan order, each group led by its loss cell."""
    groups: list[list[LossCell | Cell]] = []
    for cell in with_loss_cells(cells):
        if isinstance(cell, LossCell):
            groups.append([cell])
        else:
            groups[-1].append(cell)
    return [CheckpointGroup(g[0].checkpoint_id, g[0].key, tuple(g)) for g in groups]


def blocks(groups: list[CheckpointGroup], count: int) -> list[list[int]]:
    """``count`` contiguous blocks of group indices with about equal cost: a group goes to the block
    its cost's midpoint falls in; with no more checkpoints than blocks, block i has checkpoint i."""
    if count >= len(groups):
        return [[i] if i < len(groups) else [] for i in range(count)]
    tasks = [[c for c in g.cells if isinstance(c, Cell)] for g in groups]
    by_flops = all(c.est_flops is not None for t in tasks for c in t)
    weights = [sum(c.est_flops for c in t) if by_flops else len(t) for t in tasks]
    total = sum(weights) or 1.0
    out: list[list[int]] = [[] for _ in range(count)]
    before = 0.0
    for index, weight in enumerate(weights):
        out[min(count - 1, int((before + weight / 2) / total * count))].append(index)
        before += weight
    return out


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells of block ``index`` of ``count`` (0-based): whole checkpoints, contiguous in the plan."""
    groups = checkpoint_groups(cells)
    mine = {groups[g].checkpoint_id for g in blocks(groups, count)[index]}
    return [c for c in cells if c.checkpoint_id in mine]


def preference(owned: list[list[int]], worker: int, open_cells: dict[int, int]) -> list[int]:
    """The groups with open cells in the order worker ``worker`` tries to claim them: its own block
    from the start, then the other blocks, most open cells first, each from its end; the checkpoint
    each other block's owner works on or takes next comes last (taken only from an owner that is
    gone, or has not started, as an array task still queued)."""
    mine = [g for g in owned[worker] if open_cells.get(g)]
    others = [[g for g in b if open_cells.get(g)] for i, b in enumerate(owned) if i != worker]
    others.sort(key=lambda b: -sum(open_cells[g] for g in b))
    return mine + [g for b in others for g in reversed(b[1:])] + [b[0] for b in others if b]


def format_assignment(cells: list[Cell], workers: int) -> str:
    """Each worker's own checkpoints (where it starts; idle workers take checkpoints left by others)."""
    groups = checkpoint_groups(cells)
    lines = [
        f"{workers} workers: each starts at its own checkpoints, then takes whole checkpoints left by others"
    ]
    for worker, block in enumerate(blocks(groups, workers)):
        tasks = [c for g in block for c in groups[g].cells if isinstance(c, Cell)]
        flops = [c.est_flops for c in tasks if c.est_flops is not None]
        cost = f" ≈ {sum(flops) / 1e15:.4g} PFLOP" if flops and len(flops) == len(tasks) else ""
        names = (
            ", ".join(groups[g].checkpoint_id for g in block) or "(none: takes checkpoints from the others)"
        )
        lines.append(f"  worker {worker}: {len(block)} checkpoints, {len(tasks)} cells{cost}: {names}")
    return "\n".join(lines)
