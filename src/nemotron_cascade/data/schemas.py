"""Row schemas of the catalogued datasets: required fields and their types, one table.

``validate_row(schema, row)`` returns ``None`` for a good row, or a sentence naming the first bad
field (missing, wrong type, or an element of a list of the wrong type). Beyond types, what the
code downstream indexes without checking is checked here too, so bad input is named with its
file and row instead of failing deep in training or a reward: a ``task.<domain>`` row's
``domain`` is that domain (a ``task`` row's one of the known domains), and the elements of
``messages`` and code ``tests`` carry their keys (``ELEMENT_FIELDS``; ``messages`` non-empty; code
``tests`` may be empty: unverifiable SFT-only sources such as OpenCodeReasoning have none).
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

# Keys every element of these list fields must have (with their types).
ELEMENT_FIELDS: dict[str, dict[str, type]] = {
    "messages": {"role": str, "content": str},  # chat.render indexes both
    "tests": {"input": str, "output": str},  # the code verifier feeds input, compares output
}
NON_EMPTY_LISTS = ("messages",)
MESSAGE_ROLES = ("system", "user", "assistant", "tool")
TASK_DOMAINS = tuple(name.split(".", 1)[1] for name in SCHEMAS if name.startswith("task."))

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
        if name in ELEMENT_FIELDS and isinstance(value, list):
            problem = _elements(name, value)
            if problem:
                return problem
    if schema.startswith("task.") and row["domain"] != schema[len("task."):]:
        return f"field 'domain' must be {schema[len('task.'):]!r} (the schema's domain), got {row['domain']!r}"
    if schema == "task" and row["domain"] not in TASK_DOMAINS:
        return f"field 'domain' must be one of {list(TASK_DOMAINS)}, got {row['domain']!r}"
    return None


def _elements(name: str, value: list) -> str | None:
    if not value and name in NON_EMPTY_LISTS:
        return f"field '{name}' must be a non-empty list"
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            return f"field '{name}'[{i}] must be an object, got {type(item).__name__}"
        for key, kind in ELEMENT_FIELDS[name].items():
            if key not in item:
                return f"field '{name}'[{i}] misses '{key}'"
            if not isinstance(item[key], kind):
                return f"field '{name}'[{i}].{key} must be {_TYPE_NAMES[kind]}, got {type(item[key]).__name__}"
        if name == "messages" and item["role"] not in MESSAGE_ROLES:
            return f"field 'messages'[{i}].role must be one of {list(MESSAGE_ROLES)}, got {item['role']!r}"
    return None
