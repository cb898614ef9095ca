"""Row schemas of the catalogued datasets: required fields and their types, one table.

``validate_row(schema, row)`` returns ``None`` for a good row, or a sentence naming the first bad
field (missing, wrong type, or an element of a list of the wrong type).
"""

from __future__ import annotations

from typing import Any

_TASK = {"id": str, "domain": str, "split": str, "prompt": str}

SCHEMAS: dict[str, dict[str, Any]] = {
    "task.math": {**_TASK, "answer": str},
    "task.code": {**_TASK, "tests": (list, dict)},
    "task.science": {**_TASK, "answer": str, "choices": (list, str)},
    "task.instruction_following": {**_TASK, "instruction_id_list": (list, str), "kwargs": (list, dict)},
    "task.general": {**_TASK, "topic": str, "chosen": str, "rejected": str},
    "task.tool_calling": {**_TASK, "tools": (list, dict), "expected_calls": (list, dict)},
    "task.swe": {**_TASK, "repo": dict, "file": str, "gold_patch": str},
    "task": _TASK,
    "sft_sample": {"id": str, "domain": str, "messages": (list, dict), "thinking": bool},
    "preference_pair": {"id": str, "prompt": str, "chosen": str, "rejected": str},
}

_TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", bool: "a boolean", int: "an integer",
               float: "a number"}


def validate_row(schema: str, row: dict) -> str | None:
    """Why ``row`` breaks ``schema`` (``None`` when it does not)."""
    if schema not in SCHEMAS:
        raise KeyError(f"unknown schema {schema!r}; known: {sorted(SCHEMAS)}")
    spec = dict(SCHEMAS[schema])
    if schema == "task" and row.get("domain") and f"task.{row['domain']}" in SCHEMAS:
        spec = SCHEMAS[f"task.{row['domain']}"]
    for name, kind in spec.items():
        if name not in row:
            return f"missing field '{name}'"
        value = row[name]
        outer, inner = kind if isinstance(kind, tuple) else (kind, None)
        if not isinstance(value, outer) or (outer is str and not value.strip() and name != "rejected"):
            got = type(value).__name__ if not isinstance(value, str) else "an empty string"
            return f"field '{name}' must be {_TYPE_NAMES[outer]}{' (non-empty)' if outer is str else ''}, got {got}"
        if inner is not None:
            for i, item in enumerate(value):
                if not isinstance(item, inner):
                    return f"field '{name}'[{i}] must be {_TYPE_NAMES[inner]}, got {type(item).__name__}"
    return None
