"""Teacher backends for data curation. ``oracle`` is the embedded world's programmatic teacher.

The ``transformers``, ``openai`` and ``vllm`` teachers (curation issue) implement the same
``teacher(row, thinking) -> response`` contract.
"""

from __future__ import annotations

import functools
from typing import Callable

from nemotron_cascade.data import world
from nemotron_cascade.data.sft import Teacher


def oracle_teacher(terse_share: dict | None = None, chatty_share: dict | None = None) -> Teacher:
    """The world's correct trace and answer for a task row (options: see ``world.oracle_response``)."""
    return functools.partial(_oracle, terse_share=dict(terse_share or {}), chatty_share=dict(chatty_share or {}))


def _oracle(row: dict, thinking: bool, terse_share: dict, chatty_share: dict) -> str:
    return world.oracle_response(row, thinking, terse_share=terse_share, chatty_share=chatty_share)


_TEACHERS: dict[str, Callable[..., Teacher]] = {"oracle": oracle_teacher}


def make_teacher(backend: str, **options) -> Teacher:
    """The teacher named ``backend``, built with its ``options`` (from ``params:teacher.options``)."""
    if backend not in _TEACHERS:
        raise KeyError(f"unknown teacher backend {backend!r}; available here: {sorted(_TEACHERS)}")
    try:
        return _TEACHERS[backend](**options)
    except TypeError as e:
        raise TypeError(f"teacher {backend!r}: bad options {sorted(options)}: {e}") from None
