"""Registers the toy tasks with the task machinery (imported lazily by :mod:`emergence.data.sources`).

After this, ``make_requests("toy_mc", shots=3)``, ``evaluate(loaded, "toy_math")`` and finetuning on
``toy_yesno`` work exactly as for the real tasks; ``data_dir`` may point at a toy directory
(``emergence toy generate --out DIR``) to use a non-default world.
"""

from __future__ import annotations

import functools

from emergence.data.tasks import register_task
from emergence.data.toy.store import load_task_split
from emergence.data.toy.tasks import TOY_TASK_SPECS

for _name, _spec in TOY_TASK_SPECS.items():
    register_task(_spec, functools.partial(load_task_split, _name))
