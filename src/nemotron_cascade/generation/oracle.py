"""The embedded world's programmatic teacher (backend ``oracle``).

The other backends (``transformers``, ``openai``, ``vllm``) and the factory live in
:mod:`nemotron_cascade.generation.teachers`; ``make_teacher`` is re-exported here for old imports.
"""

from __future__ import annotations

from nemotron_cascade.data import world
from nemotron_cascade.generation.teachers import BatchTeacher, _check_request, make_teacher

__all__ = ["OracleTeacher", "make_teacher", "oracle_teacher"]


class OracleTeacher(BatchTeacher):
    """The world's correct trace and answer for a task row (options: see ``world.oracle_response``).

    Deterministic: its k answers to a request are k identical copies (k > 1 only exercises the
    plumbing; sampling diversity needs a model teacher). Never cached: it is instant, and a cache
    would keep old answers after ``world.py`` changes.
    """

    cacheable = False

    def __init__(self, terse_share: dict | None = None, chatty_share: dict | None = None):
        self.terse_share, self.chatty_share = dict(terse_share or {}), dict(chatty_share or {})
        self.identity = {"terse_share": self.terse_share, "chatty_share": self.chatty_share}

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        _check_request(rows, thinking, k)
        return [[world.oracle_response(row, mode, terse_share=self.terse_share, chatty_share=self.chatty_share)] * k
                for row, mode in zip(rows, thinking)]


def oracle_teacher(terse_share: dict | None = None, chatty_share: dict | None = None) -> OracleTeacher:
    """The programmatic teacher with its style shares (see ``world.oracle_response``)."""
    return OracleTeacher(terse_share, chatty_share)
