"""Science reward: multiple-choice answers (letters A–J, as in MMLU-Pro / GPQA).

``science_reward(response, answer) -> {0.0, 1.0}``. The final answer's choice is read from its
``\\boxed{X}`` groups (``X`` may be written ``B``, ``(B)``, ``B.``, ``\\text{B}`` or ``B) text``); every
boxed choice must be the same letter, so a hedge such as ``\\boxed{A} or \\boxed{C}`` earns 0. Without
a box, the last ``Answer: X`` / ``The answer is (X)`` phrase counts. Letters compare case-insensitively.
"""

from __future__ import annotations

import logging
import re

from nemotron_cascade.rewards.answers import boxed_all, final_answer

logger = logging.getLogger(__name__)

CHOICES = "ABCDEFGHIJ"

_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\s*\{(.*)\}$", re.DOTALL)
_BOXED_CHOICE = re.compile(r"^\(?([A-Ja-j])\)?(?:[.:)]?(?:\s.*)?)?$", re.DOTALL)
# "answer" and "is" in any case; a bare choice must be a capital (so "the answer is a ..." is no choice).
_ANSWER_PHRASE = re.compile(r"(?i:answer)\s*(?:(?i:is)|:)\s*:?\s*(?:\(([A-Ja-j])\)|\b([A-J])\b)")


def _unwrap(text: str) -> str:
    """``\\text{B}`` → ``B`` (repeatedly), stripped."""
    text = text.strip()
    while (match := _TEXT_WRAPPER.match(text)) is not None:
        text = match.group(1).strip()
    return text


def choice_letter(text: str) -> str | None:
    """The choice a boxed group names, upper case, or ``None`` if it is not a single letter A–J."""
    match = _BOXED_CHOICE.match(_unwrap(text))
    return match.group(1).upper() if match else None


def extract_choice(response: str) -> str | None:
    """The one letter a response commits to, or ``None`` (no answer, unclosed think, or a hedge)."""
    answer = final_answer(response)
    if not answer:
        return None
    boxes = boxed_all(answer)
    if boxes:
        letters = {choice_letter(b) for b in boxes}
        return letters.pop() if len(letters) == 1 else None
    phrases = _ANSWER_PHRASE.findall(answer.replace("*", ""))
    if not phrases:
        return None
    in_parens, bare = phrases[-1]
    return (in_parens or bare).upper()


def _gold_letter(answer: str) -> str:
    """The gold letter; anything but a single choice A–J is a data error."""
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}")
    letter = choice_letter(answer)
    if letter is None:
        raise ValueError(f"answer must be a single choice letter A-J, got {answer!r}")
    return letter


def science_reward(response: str, answer: str) -> float:
    """1.0 iff the response's single committed choice equals ``answer``, else 0.0."""
    gold = _gold_letter(answer)
    return 1.0 if extract_choice(response) == gold else 0.0
