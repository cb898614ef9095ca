"""Teacher backends for data curation. ``oracle`` is the embedded world's programmatic teacher.

The ``transformers``, ``openai`` and ``vllm`` teachers (curation issue) implement the same
``teacher(row, thinking) -> response`` contract.
"""

from __future__ import annotations

from nemotron_cascade.data import world
from nemotron_cascade.data.sft import Teacher


def oracle_teacher(row: dict, thinking: bool) -> str:
    """The world's correct trace and answer for a task row."""
    return world.oracle_response(row, thinking)


_TEACHERS: dict[str, Teacher] = {"oracle": oracle_teacher}


def make_teacher(backend: str) -> Teacher:
    """The teacher named ``backend``."""
    if backend not in _TEACHERS:
        raise KeyError(f"unknown teacher backend {backend!r}; available here: {sorted(_TEACHERS)}")
    return _TEACHERS[backend]
