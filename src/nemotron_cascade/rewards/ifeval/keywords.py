"""``keywords:*`` checkers: existence, frequency, forbidden words and letter frequency.

Keywords are matched literally (IFEval passes them to ``re`` as patterns; a keyword with ``(`` or
``+`` would be a regex error or a different pattern there), case-insensitively.
"""

from __future__ import annotations

import re

from nemotron_cascade.rewards.ifeval.text import compare


def keywords_existence(text: str, *, keywords: list[str]) -> bool:
    """Every keyword occurs (case-insensitive substring, as IFEval)."""
    return all(re.search(re.escape(k), text, re.IGNORECASE) for k in keywords)


def keywords_frequency(text: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """Case-insensitive occurrences of ``keyword`` compared with ``frequency``."""
    found = len(re.findall(re.escape(keyword.strip()), text, re.IGNORECASE))
    return compare(found, relation, frequency)


def forbidden_words(text: str, *, forbidden_words: list[str]) -> bool:
    """No forbidden word occurs as a whole word (case-insensitive)."""
    return not any(re.search(r"\b" + re.escape(w) + r"\b", text, re.IGNORECASE) for w in forbidden_words)


def letter_frequency(text: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    """Case-insensitive count of one character compared with ``let_frequency``.

    Any single character is counted literally, so ``letter="#"`` counts hash signs (IFEval's own
    build step replaces a non-letter with a random ASCII letter, which makes its verdict a draw).
    """
    return compare(text.lower().count(letter.lower()), let_relation, let_frequency)
