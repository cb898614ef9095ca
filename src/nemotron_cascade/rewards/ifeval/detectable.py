"""``detectable_format:*`` and ``detectable_content:*`` checkers.

Bullets follow IFEval's rule: a line whose first non-blank character is ``-`` (no space needed), or a
``*`` followed on the same line by a character other than ``*``, is a bullet; ``**bold**`` and a bare
``*`` are not (IFEval's pattern lets a bare ``*`` borrow the line break). One deliberate difference:
a markdown thematic break (a line of three or more ``-``, ``*`` or ``_``, spaces allowed, such as
``---``) is a horizontal rule, not a bullet; IFEval counts ``---`` as one. No response of IFEval's
GPT-4 reference has such a line, so the difference never shows there.
"""

from __future__ import annotations

import json
import re

CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

_BULLET = re.compile(r"\s*(?:-|\*[^*])")
_THEMATIC_BREAK = re.compile(r"[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*")


def number_placeholders(text: str, *, num_placeholders: int) -> bool:
    """At least ``num_placeholders`` ``[...]`` placeholders."""
    return len(re.findall(r"\[.*?\]", text)) >= num_placeholders


def postscript(text: str, *, postscript_marker: str) -> bool:
    """A line starts with the marker (``P.S.`` and ``P.P.S`` tolerate spaces, as IFEval)."""
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return bool(re.search(pattern, text.lower(), flags=re.MULTILINE))


def count_bullets(text: str) -> int:
    """Bullet lines (module docstring): ``-`` or ``*``-then-not-``*`` starts, thematic breaks excluded."""
    lines = text.split("\n")
    return sum(1 for line in lines if _BULLET.match(line) and not _THEMATIC_BREAK.fullmatch(line))


def number_bullet_lists(text: str, *, num_bullets: int) -> bool:
    """Exactly ``num_bullets`` bullet lines."""
    return count_bullets(text) == num_bullets


def constrained_response(text: str) -> bool:
    """Contains one of IFEval's three options (``My answer is yes.`` ...)."""
    return any(option in text for option in CONSTRAINED_RESPONSE_OPTIONS)


def number_highlighted_sections(text: str, *, num_highlights: int) -> bool:
    """At least ``num_highlights`` non-empty ``*...*`` or ``**...**`` spans on one line."""
    singles = [h for h in re.findall(r"\*[^\n*]*\*", text) if h.strip("*").strip()]
    doubles = [h for h in re.findall(r"\*\*[^\n*]*\*\*", text) if h[2:-2].strip()]
    return len(singles) + len(doubles) >= num_highlights


def multiple_sections(text: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least ``num_sections`` sections, each opened by ``<spliter> <number>``."""
    pattern = r"\s?" + re.escape(section_spliter.strip()) + r"\s?\d+\s?"
    return len(re.split(pattern, text)) - 1 >= num_sections


def json_format(text: str) -> bool:
    """The whole answer is JSON, optionally inside one ```json fence."""
    body = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        if body.startswith(prefix):
            body = body[len(prefix):]
            break
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def title(text: str) -> bool:
    """A non-empty title in double angular brackets, ``<<like this>>``, on one line."""
    return any(t[2:-2].strip() for t in re.findall(r"<<[^\n]+>>", text))
