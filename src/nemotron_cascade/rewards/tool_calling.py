"""Tool-calling reward: the calls in ``<tool_call>...</tool_call>`` blocks must match exactly.

``parse_tool_calls(text)`` (from :mod:`nemotron_cascade.chat`, re-exported here) reads every block
of the final answer into a record ``{"name", "arguments", "valid", "raw", "error"}``; a block that
is not a JSON object with a string ``name`` and an object ``arguments`` (a JSON-encoded string of an
object is accepted, as OpenAI writes it) is recorded with ``valid=False`` — nothing raises. An
unterminated block is invalid too.

``tool_call_reward(response, expected_calls) -> {0.0, 1.0}``: 1.0 iff there is no invalid block and
the calls equal ``expected_calls`` in order. Arguments compare as JSON values: key order does not
matter, ``1 == 1.0``, but ``1 != "1"`` and ``true != 1``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from nemotron_cascade.chat import parse_tool_calls
from nemotron_cascade.rewards.answers import final_answer

logger = logging.getLogger(__name__)

def canonical_json(value: Any) -> Any:
    """A hashable, type-tagged form of a JSON value: numbers as numbers, booleans apart from them."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", float(value) if isinstance(value, float) or abs(value) < 2**53 else value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), canonical_json(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(canonical_json(v) for v in value))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _expected(expected_calls: Sequence[dict]) -> list[tuple[str, Any]]:
    """Canonical ``(name, arguments)`` pairs; a malformed expectation is a data error."""
    if isinstance(expected_calls, (str, dict)) or not isinstance(expected_calls, Sequence):
        raise TypeError(f"expected_calls must be a list of dicts, got {type(expected_calls).__name__}")
    pairs = []
    for index, call in enumerate(expected_calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError(f"expected_calls[{index}] must be a dict with a str 'name', got {call!r}")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError(f"expected_calls[{index}]['arguments'] must be a dict, got {arguments!r}")
        pairs.append((call["name"], canonical_json(arguments)))
    return pairs


def tool_call_reward(response: str, expected_calls: Sequence[dict]) -> float:
    """1.0 iff every block is valid and the calls equal ``expected_calls`` in order, else 0.0."""
    expected = _expected(expected_calls)
    if final_answer(response) is None:
        return 0.0
    calls = parse_tool_calls(response)
    if any(not call["valid"] for call in calls):
        return 0.0
    return 1.0 if [(c["name"], canonical_json(c["arguments"])) for c in calls] == expected else 0.0

__all__ = ["canonical_json", "parse_tool_calls", "tool_call_reward"]
