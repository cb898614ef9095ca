"""Tool-calling training source: xLAM function calling."""

from __future__ import annotations

from collections.abc import Mapping

from nemotron_cascade import chat
from nemotron_cascade.data.sources.fields import RowError, json_of, text_of, with_references


def map_xlam_function_calling(raw: Mapping) -> dict:
    """Salesforce/xlam-function-calling-60k, split ``train`` (gated: needs an HF token).

    Columns from the dataset card ("JSON Data Format for Query and Answers"): ``id``, ``query``,
    ``tools`` (JSON text: list of ``{name, description, parameters}``, each parameter
    ``{type, description[, default]}``), ``answers`` (JSON text: list of ``{name, arguments}``).
    Tools keep xLAM's shape; every expected call must name a declared tool. ``reference_responses``:
    the ``answers`` as the project's ``<tool_call>`` blocks, one per call (``plain``: no trace).
    """
    prompt = text_of(raw, "query")
    tools, calls = json_of(raw, "tools"), json_of(raw, "answers")
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise RowError("tools", "expected a list of tools with a string 'name'")
    if not isinstance(calls, list) or not calls:
        raise RowError("answers", "expected a non-empty list of calls")
    declared = {t["name"] for t in tools}
    expected = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("arguments"), dict):
            raise RowError("answers", f"call {i} is not {{name: str, arguments: object}}")
        if call["name"] not in declared:
            raise RowError("answers", f"call {i} names undeclared tool {call['name']!r}")
        expected.append({"name": call["name"], "arguments": call["arguments"]})
    reply = "\n".join(chat.format_tool_call(c["name"], c["arguments"]) for c in expected)
    return with_references({"prompt": prompt, "tools": tools, "expected_calls": expected}, {"plain": reply})
