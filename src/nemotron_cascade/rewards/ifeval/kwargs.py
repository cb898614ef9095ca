"""Kwargs validation: each IFEval instruction's fields, cleaned or refused with a message naming them.

Unknown ids, missing, ill-typed or out-of-range fields and unexpected keys raise (never a silent 0).
Keys whose value is ``None`` (or NaN, as pandas writes a missing number) are ignored, as IFEval's
JSONL carries them.
"""

from __future__ import annotations

import math
from typing import Any

from nemotron_cascade.rewards.ifeval.language import SUPPORTED_LANGUAGES, normalise_language
from nemotron_cascade.rewards.ifeval.text import RELATIONS


def is_missing(value: Any) -> bool:
    """``None`` or a float NaN (how pandas stores a missing number)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def integer(value: Any) -> int:
    """A non-negative int (an integral float is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"expected a non-negative int, got {value}")
    return value


def positive(value: Any) -> int:
    """An int >= 1."""
    number = integer(value)
    if number < 1:
        raise ValueError(f"expected an int >= 1, got {number}")
    return number


def text(value: Any) -> str:
    """A non-blank str."""
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise ValueError("expected a non-empty str")
    return value


def texts(value: Any) -> list[str]:
    """A non-empty list (or tuple) of non-blank str."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list of str, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError("expected a non-empty list of str")
    return [text(v) for v in value]


def relation(value: Any) -> str:
    """``less than`` or ``at least``."""
    name = text(value)
    if name not in RELATIONS:
        raise ValueError(f"expected one of {RELATIONS}, got {name!r}")
    return name


def character(value: Any) -> str:
    """One non-blank character (a letter, or any mark such as ``#``, counted literally), lower case."""
    char = text(value).strip()
    if len(char) != 1:
        raise ValueError(f"expected a single letter or character, got {value!r}")
    return char.lower()


def language(value: Any) -> str:
    """A language code ``langdetect`` can name (``zh-CN`` → ``zh``)."""
    code = normalise_language(text(value))
    if code not in SUPPORTED_LANGUAGES:
        raise ValueError(f"unsupported language code {value!r}; supported: {sorted(SUPPORTED_LANGUAGES)}")
    return code
