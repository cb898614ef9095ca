"""Reading a raw row's columns: every problem names its column (:class:`RowError`), and the answer
and reference-response helpers the mappers share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nemotron_cascade import chat
from nemotron_cascade.rewards.answers import final_answer, last_boxed

LETTERS = "ABCDEFGHIJ"


class RowError(ValueError):
    """A raw row that cannot be mapped; ``field`` names the raw column at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field '{field}': {message}")
        self.field, self.message = field, message



def value_of(raw: Mapping, name: str) -> Any:
    """The column's value; a missing column and a null (how a JSON/Arrow table fills a row that
    lacks it) are both "missing"."""
    if name not in raw or raw[name] is None:
        raise RowError(name, "missing")
    return raw[name]


def text_of(raw: Mapping, name: str) -> str:
    """A non-empty string column."""
    value = value_of(raw, name)
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(name, "empty")
    return value


def json_of(raw: Mapping, name: str) -> Any:
    """A column holding JSON text (already-decoded lists/dicts pass through)."""
    value = value_of(raw, name)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError(name, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def strings_of(raw: Mapping, name: str) -> list[str]:
    """A list of strings stored as a list or as JSON text (SWE-bench's ``FAIL_TO_PASS``)."""
    value = json_of(raw, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowError(name, "expected a list of strings")
    return value


def messages_of(raw: Mapping, name: str) -> list[dict]:
    """A chat column: a list of ``{role, content}`` messages with string contents."""
    value = value_of(raw, name)
    if not isinstance(value, list) or not all(isinstance(m, Mapping) and isinstance(m.get("content"), str)
                                              for m in value):
        raise RowError(name, "expected a list of {role, content} messages")
    return list(value)


def turn_of(messages: list[dict], role: str, name: str, last: bool = False) -> str:
    """The first (or ``last``) non-empty message of ``role``; ``name`` is the column they came from."""
    contents = [m["content"] for m in messages if m.get("role") == role and m["content"].strip()]
    if not contents:
        raise RowError(name, f"no non-empty '{role}' message")
    return contents[-1] if last else contents[0]


def clean_answer(answer: str) -> str:
    """An answer without surrounding space, ``$...$`` or a whole-answer ``\\boxed{...}``."""
    answer = answer.strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    boxed = last_boxed(answer)
    if boxed is not None and answer.startswith("\\boxed") and answer.endswith("}"):
        answer = boxed
    return answer


def boxed_answer(text: str, name: str) -> str:
    """The last ``\\boxed{}`` answer of a solution (after its think block, if any)."""
    answer = final_answer(text)
    boxed = last_boxed(answer if answer is not None else text)
    if not boxed or not boxed.strip():
        raise RowError(name, "no \\boxed{} answer")
    return boxed.strip()


def references(response: str | None) -> dict[str, str]:
    """A source's own response in the project's chat format, by mode: ``{"thinking": <think> block
    then the answer}`` when the response holds a closed, non-empty reasoning trace, ``{"plain": the
    answer}`` when it holds none (or an empty one), ``{}`` when there is no usable answer (an
    unclosed ``<think>``, an empty text). This is the ``reference_responses`` contract the
    ``dataset`` teacher reads: keys ``thinking`` / ``plain``, non-empty strings only."""
    if not isinstance(response, str) or not response.strip():
        return {}
    parsed = chat.split_response(response)
    if not parsed.answer:
        return {}
    if parsed.status == "thinking" and parsed.thinking:
        return {"thinking": chat.thinking_response(parsed.thinking, parsed.answer)}
    return {"plain": parsed.answer}


def with_references(task: dict, refs: dict[str, str]) -> dict:
    """``task`` with ``reference_responses`` when ``refs`` holds one (the field is left out when the
    source gave no usable response)."""
    refs = {k: v for k, v in refs.items() if isinstance(v, str) and v.strip()}
    return {**task, "reference_responses": refs} if refs else task
