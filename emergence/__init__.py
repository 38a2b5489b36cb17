"""emergence: predict at what scale a language model first solves a task, by finetuning a ladder.

Library first: every command in :mod:`emergence.cli` is a thin call into these subpackages.
See docs/design.md for the method, the data flow and the package map.
"""

__version__ = "0.1.0"
