"""The ``dataset`` teacher: the responses the sources already carry, a model teacher for the rest.

A real task row may carry ``reference_responses: {"thinking"?: str, "plain"?: str}``, the source's
own response in the project's chat format (``thinking``: a closed ``<think>`` block then the
answer, :func:`nemotron_cascade.chat.thinking_response`; ``plain``: the answer alone). AceMath's
``messages``, OpenMathReasoning's ``generated_solution``, OpenCodeReasoning's ``output``... were
written by the paper's teachers; asking a model again would pay for what the data already holds.

How a request ``(row, mode)`` is answered, in this order:

1. the row's reference in ``mode``: as it is, **once** — with ``k > 1`` a referenced request still
   gives one sample (``<row>-think``), not k copies: a copy adds no diversity, only weight the SFT
   blend's own weights should decide, and exact duplicates;
2. a ``plain`` request on a row with only a ``thinking`` reference, when ``plain_from_thinking``
   (default): the reference's final answer, the text after ``</think>`` (a model's summary of its
   reasoning, which is what a non-thinking answer is); no model is asked;
3. the ``fallback`` teacher of that mode (``fallback: openai``, or per mode
   ``{thinking: openai, plain: openai_plain}``: the names of ``teacher.backends`` blocks, built by
   :func:`~nemotron_cascade.generation.teachers.teacher_from_config`): k answers, cached by
   :mod:`nemotron_cascade.data.teacher` like any model teacher's;
4. with no fallback for that mode: ``skip_missing: true`` drops the request (no sample, logged by
   source); otherwise an error names the rows, their source and the setting to change.

The mode of a request is drawn before the teacher (``thinking_share``, ``both_modes_share``). With
``follow_references`` (default), :meth:`DatasetTeacher.plan` moves a request whose mode the row has
no reference for (after rule 2) to the mode it has one for: an AceMath row (plain answers only)
drawn in thinking mode becomes a plain sample of its own answer instead of a request to the
thinking model; a row drawn in both modes keeps one request per mode it can answer. A row with no
reference at all keeps its drawn mode (the fallback answers it). Set ``follow_references: false``
to keep the drawn mix of modes exactly, at the cost of asking the fallback for the other mode.

Not cacheable itself (its answers are instant and defined by the data, like the oracle's); when
every mode has a fallback, ``cacheable`` and ``identity`` are the fallbacks' (the dataset options
do not decide what the fallback writes, so changing them keeps the cache).
"""

from __future__ import annotations

import logging
from collections import Counter

from nemotron_cascade import chat
from nemotron_cascade.generation.teachers import BatchTeacher, _check_request

log = logging.getLogger(__name__)
MODES = {True: "thinking", False: "plain"}
SETTING = "teacher.backends.dataset"


class DatasetTeacherError(ValueError):
    """A request the dataset teacher cannot answer, or a malformed ``reference_responses``."""


def _where(row: dict) -> str:
    return f"row {row.get('id')!r} (source {row.get('source', 'world')})"


def references(row: dict) -> dict[str, str]:
    """The row's ``reference_responses`` by mode, checked (``{}`` when it has none)."""
    refs = row.get("reference_responses")
    if refs is None:
        return {}
    if not isinstance(refs, dict) or not set(refs) <= {"thinking", "plain"}:
        raise DatasetTeacherError(f"dataset teacher: {_where(row)}: reference_responses must be "
                                  f"{{'thinking'?: str, 'plain'?: str}}, got {refs!r:.200}")
    for mode, text in refs.items():
        parsed = chat.split_response(text) if isinstance(text, str) else None
        if parsed is None or not parsed.answer or parsed.status != mode:
            raise DatasetTeacherError(
                f"dataset teacher: {_where(row)}: reference_responses.{mode} is not "
                + ("a closed <think> block followed by an answer" if mode == "thinking" else
                   "an answer without a <think> block") + f": {str(text)[:120]!r}")
    return dict(refs)


class DatasetTeacher(BatchTeacher):
    """The sources' own responses, then ``fallback`` teachers per mode (see the module docstring)."""

    def __init__(self, fallback: BatchTeacher | dict | None = None, plain_from_thinking: bool = True,
                 follow_references: bool = True, skip_missing: bool = False):
        per_mode = fallback if isinstance(fallback, dict) else {"thinking": fallback, "plain": fallback}
        for name, teacher in per_mode.items():
            if name not in ("thinking", "plain") or not (teacher is None or hasattr(teacher, "respond")):
                raise DatasetTeacherError(
                    f"dataset teacher: fallback must be teachers by mode, got {name}: {teacher!r:.80} (a backend "
                    "name is resolved by teachers.teacher_from_config from the teacher.backends blocks)")
        self.fallbacks = {mode: per_mode.get(name) for mode, name in MODES.items()}
        self.plain_from_thinking, self.follow_references = bool(plain_from_thinking), bool(follow_references)
        self.skip_missing = bool(skip_missing)
        models = [t for t in self.fallbacks.values() if t is not None]
        self.cacheable = bool(models) and all(t.cacheable for t in models)
        self.identity = {"fallback": {MODES[mode]: _identity(t) for mode, t in self.fallbacks.items()}}

    def _answerable(self, refs: dict[str, str], thinking: bool) -> bool:
        """Whether the references answer a request in this mode (rules 1 and 2)."""
        return MODES[thinking] in refs or (not thinking and self.plain_from_thinking and "thinking" in refs)

    def plan(self, requests: list[tuple[dict, bool]]) -> list[tuple[dict, bool]]:
        """With ``follow_references``: each request moved to a mode the row's references answer when
        they do not answer its own; a second request of the same (row, mode) dropped."""
        if not self.follow_references:
            return requests
        out, seen, moved = [], set(), Counter()
        for row, mode in requests:
            refs = references(row)
            if not self._answerable(refs, mode) and self._answerable(refs, not mode):
                mode = not mode
                moved[row.get("source", "world")] += 1
            if (id(row), mode) not in seen:
                seen.add((id(row), mode))
                out.append((row, mode))
        if moved or len(out) < len(requests):
            log.info("dataset teacher: %d requests moved to the mode their source answers in (%s), %d duplicates "
                     "dropped", sum(moved.values()), dict(moved), len(requests) - len(out))
        return out

    def from_data(self, row: dict, thinking: bool) -> list[str] | None:
        """Rules 1, 2 and 4 (skip) of the module docstring; ``None`` for the fallback (rule 3)."""
        refs = references(row)
        if MODES[thinking] in refs:
            return [refs[MODES[thinking]]]
        if not thinking and self.plain_from_thinking and "thinking" in refs:
            return [chat.split_response(refs["thinking"]).answer]
        return [] if self.fallbacks[thinking] is None and self.skip_missing else None

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        """Every request answered: references once, the fallbacks' k answers, ``[]`` for a skipped one."""
        _check_request(rows, thinking, k)
        out = [self.from_data(row, mode) for row, mode in zip(rows, thinking)]
        ask = [i for i, answers in enumerate(out) if answers is None]
        missing = [i for i in ask if self.fallbacks[thinking[i]] is None]
        if missing:
            raise DatasetTeacherError(_missing_message([rows[i] for i in missing], [thinking[i] for i in missing]))
        groups: dict[int, list[int]] = {}
        for i in ask:
            groups.setdefault(id(self.fallbacks[thinking[i]]), []).append(i)
        for part in groups.values():
            teacher = self.fallbacks[thinking[part[0]]]
            for i, answers in zip(part, teacher.respond([rows[i] for i in part], [thinking[i] for i in part], k)):
                out[i] = list(answers)
        return out


def _identity(teacher: BatchTeacher | None) -> dict | None:
    """What decides a fallback's answers: its kind and its own identity."""
    return None if teacher is None else {"backend": getattr(teacher, "backend", type(teacher).__name__),
                                         **teacher.identity}


def _missing_message(rows: list[dict], modes: list[bool]) -> str:
    """Which requests have neither a reference nor a fallback, and what to set."""
    shown = ", ".join(f"{r.get('id')} ({r.get('source', 'world')}, {MODES[m]})" for r, m in zip(rows[:5], modes))
    sources = dict(Counter(r.get("source", "world") for r in rows))
    return (f"dataset teacher: {len(rows)} requests have no reference response in their mode and no fallback "
            f"teacher for it: {shown}{', ...' if len(rows) > 5 else ''} (by source: {sources}). Set {SETTING}."
            f"fallback to a model teacher's block (e.g. `fallback: openai`, or per mode `{{thinking: openai, "
            f"plain: openai_plain}}`), or {SETTING}.skip_missing: true to drop these requests")


def dataset_teacher(fallback: BatchTeacher | dict | None = None, plain_from_thinking: bool = True,
                    follow_references: bool = True, skip_missing: bool = False) -> DatasetTeacher:
    """The dataset teacher (``fallback``: teachers, already built; by name through
    :func:`~nemotron_cascade.generation.teachers.teacher_from_config`)."""
    if isinstance(fallback, str) or (isinstance(fallback, dict) and any(isinstance(v, str) for v in fallback.values())):
        raise DatasetTeacherError(
            f"dataset teacher: fallback {fallback!r} names teacher.backends blocks; build the teacher with "
            "nemotron_cascade.generation.teachers.teacher_from_config(backend, backends), which resolves them")
    return DatasetTeacher(fallback, plain_from_thinking, follow_references, skip_missing)
