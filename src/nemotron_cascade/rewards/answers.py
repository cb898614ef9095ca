"""Shared helpers that cut a model's whole output down to what the verifiers judge.

The rule every verifier follows (docs/design.md, "Contracts"):

* a response with a closed think block (``<think> ... </think> final``) is judged on the text after
  the *last* ``</think>``;
* a response without any ``<think>`` is judged as a whole (non-thinking mode). A ``</think>`` with no
  opener counts as a closed block: chat templates may put the opening tag in the prompt;
* a response whose think block opens but never closes has no final answer (``None``): it earns 0.

The boxed helpers read LaTeX ``\\boxed{...}`` groups with balanced braces (``\\boxed{\\frac{1}{2}}``).
"""

from __future__ import annotations

import re

from nemotron_cascade.chat import split_response

_BOXED = re.compile(r"\\boxed\s*\{")
# A fence opens at the start of a line (``` plus an optional info string) and closes on a line of its own.
_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([^\s`]*)[^\n`]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL
)


def final_answer(response: str) -> str | None:
    """The text a verifier judges: after the last ``</think>``, or all of it; ``None`` if unclosed."""
    return split_response(response).answer


def _closing_brace(text: str, open_index: int) -> int:
    """Index of the ``}`` matching the ``{`` at ``open_index``, or -1 when it never closes."""
    depth = 0
    for i in range(open_index, len(text)):
        char = text[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def boxed_all(text: str) -> list[str]:
    """Contents of every top-level ``\\boxed{...}`` in order (unclosed groups are skipped)."""
    found: list[str] = []
    position = 0
    while True:
        match = _BOXED.search(text, position)
        if match is None:
            return found
        close = _closing_brace(text, match.end() - 1)
        if close < 0:
            position = match.end()
            continue
        found.append(text[match.end():close].strip())
        position = close + 1


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or ``None``."""
    boxes = boxed_all(text)
    return boxes[-1] if boxes else None


def last_fenced_block(text: str, languages: tuple[str, ...] = ()) -> str | None:
    """Body of the last closed ```` ``` ```` block, optionally only those tagged with ``languages``."""
    bodies = [
        body
        for tag, body in _FENCE.findall(text)
        if not languages or tag.lower() in languages
    ]
    return bodies[-1] if bodies else None
