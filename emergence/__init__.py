"""emergence: predict at what scale a language model first solves a task, by finetuning a ladder.

Library first: every command in :mod:`emergence.cli` is a thin call into these subpackages.
See DESIGN.md (shared) for the method and the data flow.
"""

__version__ = "0.1.0"
