"""The embedded world's programmatic teacher (backend ``oracle``).

The other backends (``dataset``, ``transformers``, ``openai``, ``vllm``) and the factory live in
:mod:`nemotron_cascade.generation.teachers`; ``make_teacher`` is re-exported here for old imports.
"""

from __future__ import annotations

from nemotron_cascade.data import world
from nemotron_cascade.generation.teachers import BatchTeacher, _check_request, make_teacher

__all__ = ["NotAWorldRowError", "OracleTeacher", "is_world_row", "make_teacher", "oracle_teacher"]

SETTING = ("set teacher.backend (or filters.config.cross_check.backend, where the oracle is the cross-check) "
           "to `dataset` (the sources' own responses, a model teacher for the rest) or to a model teacher "
           "(openai, vllm, transformers)")


class NotAWorldRowError(ValueError):
    """The oracle was asked about a row that is not a task of the embedded world."""


def is_world_row(row: dict) -> bool:
    """Whether ``row`` is a task of the embedded world: a domain the world registers and no real
    source (``data.sources.map_rows`` stamps every real row with its ``source``; world rows have none)."""
    return row.get("source", "world") == "world" and row.get("domain") in world.REGISTRY


def _refusal(row: dict, reason: str, others: int = 0) -> NotAWorldRowError:
    more = f" ({others} more such rows in this batch)" if others else ""
    return NotAWorldRowError(
        f"oracle teacher: row {row.get('id')!r} (source {row.get('source', 'world')}, domain {row.get('domain')}) "
        f"{reason}: the oracle writes its answers from world-only fields (math `steps`, code `plan`, ...) that "
        f"real rows lack{more}. To answer real rows, {SETTING}")


class OracleTeacher(BatchTeacher):
    """The world's correct trace and answer for a task row (options: see ``world.oracle_response``).

    Deterministic: its k answers to a request are k identical copies (k > 1 only exercises the
    plumbing; sampling diversity needs a model teacher). Never cached: it is instant, and a cache
    would keep old answers after ``world.py`` changes. A row that is not a world task (a real
    source's row, :func:`is_world_row`) is refused with :class:`NotAWorldRowError` naming the row,
    its source and the setting to change; so is a world-looking row without the fields its
    domain's teacher reads.
    """

    cacheable = False

    def __init__(self, terse_share: dict | None = None, chatty_share: dict | None = None):
        self.terse_share, self.chatty_share = dict(terse_share or {}), dict(chatty_share or {})
        self.identity = {"terse_share": self.terse_share, "chatty_share": self.chatty_share}

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        _check_request(rows, thinking, k)
        foreign = [row for row in rows if not is_world_row(row)]
        if foreign:
            raise _refusal(foreign[0], "is not a task of the embedded world", len(foreign) - 1)
        return [[self._answer(row, mode)] * k for row, mode in zip(rows, thinking)]

    def _answer(self, row: dict, thinking: bool) -> str:
        try:
            return world.oracle_response(row, thinking, terse_share=self.terse_share, chatty_share=self.chatty_share)
        except KeyError as e:
            if e.args and e.args[0] in row:  # a defect of the world's code, not a missing field
                raise
            raise _refusal(row, f"lacks the field {e} its domain's teacher reads") from None


def oracle_teacher(terse_share: dict | None = None, chatty_share: dict | None = None) -> OracleTeacher:
    """The programmatic teacher with its style shares (see ``world.oracle_response``)."""
    return OracleTeacher(terse_share, chatty_share)
