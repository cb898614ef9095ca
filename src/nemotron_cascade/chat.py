"""The chat template of Nemotron-Cascade and the parsers for what a model writes.

Qwen3-style ChatML, as in the paper (§2 of the summary):

* every turn is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``;
* the mode flag is appended to *each user turn*, not to the system prompt: `` /think`` or
  `` /no_think``, so that a conversation can switch mode per turn (a message may carry
  ``"thinking": bool``; otherwise the global ``enable_thinking`` applies);
* a thinking answer is ``<think>\\n{trace}\\n</think>\\n\\n{final}``; a non-thinking answer is the
  final text alone (no think block);
* in multi-turn history, assistant turns before the last user turn keep only their final answer;
* tools are declared in the system prompt inside ``<tools></tools>`` (one JSON schema a line) and the
  model calls them with ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``.

The same template exists twice: :func:`render` (Python, used for SFT masking) and
:data:`CHAT_TEMPLATE` (Jinja, stored in the tokenizer so ``apply_chat_template`` works anywhere);
a test keeps them identical.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
THINK_FLAG = " /think"
NO_THINK_FLAG = " /no_think"
TOOLS_HEADER = "# Tools\n<tools>\n"
TOOLS_FOOTER = "</tools>\nCall a tool as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>."

CHAT_TEMPLATE = (
    "{%- set ns = namespace(last_user=-1) -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- set default_think = enable_thinking if enable_thinking is defined else true -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\n<tools>\\n' -}}"
    "{%- for t in tools -%}{{- t | tojson -}}{{- '\\n' -}}{%- endfor -%}"
    "{{- '</tools>\\nCall a tool as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>.<|im_end|>\\n' -}}"
    "{%- elif messages[0]['role'] == 'system' -%}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}"
    "{%- set think = m['thinking'] if m['thinking'] is defined and m['thinking'] is not none else default_think -%}"
    "{{- '<|im_start|>user\\n' + m['content'] + (' /think' if think else ' /no_think') + '<|im_end|>\\n' -}}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{%- set content = m['content'] -%}"
    "{%- if loop.index0 < ns.last_user and '</think>' in content -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' -}}"
    "{%- elif m['role'] == 'tool' -%}"
    "{{- '<|im_start|>tool\\n' + m['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def _tools_block(tools: Sequence[dict]) -> str:
    lines = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tools)
    return TOOLS_HEADER + lines + TOOLS_FOOTER


def _system_turn(messages: Sequence[dict], tools: Sequence[dict] | None) -> str:
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    if tools:
        prefix = system + "\n\n" if system is not None else ""
        return f"{IM_START}system\n{prefix}{_tools_block(tools)}{IM_END}\n"
    return f"{IM_START}system\n{system}{IM_END}\n" if system is not None else ""


def strip_thinking(content: str) -> str:
    """Keep only the final answer of an assistant turn (used for turns in the history)."""
    return content.split(THINK_CLOSE)[-1].lstrip("\n") if THINK_CLOSE in content else content


def render_turns(
    messages: Sequence[dict], tools: Sequence[dict] | None = None, enable_thinking: bool = True
) -> list[tuple[str, str]]:
    """Render a conversation as (role, text) pieces whose concatenation is the prompt text.

    The pieces let the SFT collator find the assistant spans without re-tokenising.
    """
    _validate(messages)
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    pieces = [("system", _system_turn(messages, tools))] if (tools or messages[0]["role"] == "system") else []
    for i, m in enumerate(messages):
        role, content = m["role"], m["content"]
        if role == "user":
            think = m.get("thinking")
            think = enable_thinking if think is None else think
            flag = THINK_FLAG if think else NO_THINK_FLAG
            pieces.append(("user", f"{IM_START}user\n{content}{flag}{IM_END}\n"))
        elif role == "assistant":
            text = strip_thinking(content) if i < last_user else content
            pieces.append(("assistant_header", f"{IM_START}assistant\n"))
            pieces.append(("assistant", f"{text}{IM_END}"))
            pieces.append(("separator", "\n"))
        elif role == "tool":
            pieces.append(("tool", f"{IM_START}tool\n{content}{IM_END}\n"))
    return pieces


def render(
    messages: Sequence[dict],
    tools: Sequence[dict] | None = None,
    add_generation_prompt: bool = False,
    enable_thinking: bool = True,
) -> str:
    """Render messages exactly as :data:`CHAT_TEMPLATE` does."""
    text = "".join(t for _, t in render_turns(messages, tools, enable_thinking))
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def _validate(messages: Sequence[dict]) -> None:
    if not messages:
        raise ValueError("a conversation needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i}: needs the fields 'role' and 'content', got {m!r:.80}")
        if m["role"] not in {"system", "user", "assistant", "tool"}:
            raise ValueError(f"message {i}: field 'role' is {m['role']!r}; expected system/user/assistant/tool")
        if not isinstance(m["content"], str):
            raise ValueError(f"message {i}: field 'content' must be a string, got {type(m['content']).__name__}")
        if m["role"] == "system" and i != 0:
            raise ValueError(f"message {i}: a system message may only come first")


def thinking_response(trace: str, answer: str) -> str:
    """Format a thinking-mode assistant response."""
    return f"{THINK_OPEN}\n{trace}\n{THINK_CLOSE}\n\n{answer}"


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """Format one tool call as the model must emit it."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{payload}\n{TOOL_CALL_CLOSE}"


@dataclass(frozen=True)
class ParsedResponse:
    """A response split into its parts.

    ``status`` is ``"thinking"`` (closed think block), ``"plain"`` (no think block: non-thinking
    mode) or ``"unclosed"`` (``<think>`` never closed: the answer is ``None`` and scores 0).
    """

    thinking: str | None
    answer: str | None
    status: str


def split_response(text: str) -> ParsedResponse:
    """Split a model response into thinking and final answer.

    The answer is the text after the last ``</think>``; a ``</think>`` without an opener still
    closes a block (templates may put ``<think>`` in the prompt); a ``<think>`` that opens again
    after the last close, or never closes, leaves no answer.
    """
    if not isinstance(text, str):
        raise TypeError(f"response must be a str, got {type(text).__name__}")
    if THINK_CLOSE in text:
        head, _, tail = text.rpartition(THINK_CLOSE)
        thinking = head.split(THINK_OPEN, 1)[-1].strip()
        if THINK_OPEN in tail:
            return ParsedResponse(thinking=thinking, answer=None, status="unclosed")
        return ParsedResponse(thinking=thinking, answer=tail.strip(), status="thinking")
    if THINK_OPEN in text:
        return ParsedResponse(thinking=text.split(THINK_OPEN, 1)[1].strip(), answer=None, status="unclosed")
    return ParsedResponse(thinking=None, answer=text.strip(), status="plain")


def final_answer(text: str) -> str | None:
    """The part of a response that verifiers judge (``None`` for an unclosed think block)."""
    return split_response(text).answer


_TOOL_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + r"|$)", re.DOTALL)


def _call_record(raw: str, name: Any = None, arguments: Any = None, error: str | None = None) -> dict:
    """One parsed call; ``valid`` iff there is no error."""
    return {"name": name, "arguments": arguments, "valid": error is None, "raw": raw, "error": error}


def _parse_call_block(raw: str, closed: bool) -> dict:
    """A record for the text between ``<tool_call>`` and ``</tool_call>``."""
    if not closed:
        return _call_record(raw, error="unterminated <tool_call> block")
    try:
        call = json.loads(raw)
    except ValueError as error:
        return _call_record(raw, error=f"malformed JSON: {error}")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return _call_record(raw, error="a call must be a JSON object with a string 'name'")
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI-style JSON-encoded arguments
        try:
            arguments = json.loads(arguments)
        except ValueError as error:
            return _call_record(raw, call["name"], error=f"arguments string is not JSON: {error}")
    if not isinstance(arguments, dict):
        return _call_record(raw, call["name"], error="'arguments' must be a JSON object")
    return _call_record(raw, call["name"], arguments)


def parse_tool_calls(text: str) -> list[dict]:
    """Every ``<tool_call>`` block of the final answer, in order, as a record.

    A record is ``{"name", "arguments", "valid", "raw", "error"}``; a malformed block (bad JSON, no
    string ``name``, ``arguments`` not an object, unterminated) is kept with ``valid=False`` and the
    reason in ``error``. Nothing raises. Calls inside the thinking are not calls.
    """
    answer = final_answer(text)
    if answer is None:
        return []
    return [_parse_call_block(m.group(1).strip(), m.group(0).endswith(TOOL_CALL_CLOSE))
            for m in _TOOL_BLOCK.finditer(answer)]
