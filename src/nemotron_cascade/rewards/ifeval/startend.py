"""``startend:*``, ``combination:*`` and ``punctuation:*`` checkers."""

from __future__ import annotations


def two_responses(text: str) -> bool:
    """Two different responses separated by ``******`` (no empty response in between)."""
    valid = []
    parts = text.split("******")
    for index, part in enumerate(parts):
        if part.strip():
            valid.append(part.strip())
        elif index not in (0, len(parts) - 1):
            return False
    return len(valid) == 2 and valid[0] != valid[1]


def repeat_prompt(text: str, *, prompt_to_repeat: str) -> bool:
    """The answer starts with the prompt, word for word (case-insensitive)."""
    return text.strip().lower().startswith(prompt_to_repeat.strip().lower())


def end_checker(text: str, *, end_phrase: str) -> bool:
    """The answer (stripped of outer double quotes) ends with ``end_phrase`` (case-insensitive)."""
    return text.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(text: str) -> bool:
    """The answer is wrapped in double quotation marks."""
    body = text.strip()
    return len(body) > 1 and body[0] == '"' and body[-1] == '"'


def no_comma(text: str) -> bool:
    """No ASCII comma anywhere."""
    return "," not in text
