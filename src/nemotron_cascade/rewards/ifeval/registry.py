"""The instruction table: IFEval id → checker and kwargs schema, and validation against it.

The 25 ids and their kwargs names are Google's IFEval (``instructions_registry.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nemotron_cascade.rewards.ifeval import detectable, keywords, language, length, startend
from nemotron_cascade.rewards.ifeval import kwargs as F


@dataclass(frozen=True)
class InstructionSpec:
    """One IFEval instruction: its checker and the kwargs it requires (name → validator)."""

    check: Callable[..., bool]
    fields: Mapping[str, Callable[[Any], Any]]


_COUNT = {"relation": F.relation}
INSTRUCTIONS: dict[str, InstructionSpec] = {
    "keywords:existence": InstructionSpec(keywords.keywords_existence, {"keywords": F.texts}),
    "keywords:frequency": InstructionSpec(
        keywords.keywords_frequency, {"keyword": F.text, "frequency": F.integer, **_COUNT}),
    "keywords:forbidden_words": InstructionSpec(keywords.forbidden_words, {"forbidden_words": F.texts}),
    "keywords:letter_frequency": InstructionSpec(
        keywords.letter_frequency, {"letter": F.character, "let_frequency": F.integer, "let_relation": F.relation}),
    "language:response_language": InstructionSpec(language.response_language, {"language": F.language}),
    "length_constraints:number_sentences": InstructionSpec(
        length.number_sentences, {"num_sentences": F.integer, **_COUNT}),
    "length_constraints:number_paragraphs": InstructionSpec(length.number_paragraphs, {"num_paragraphs": F.positive}),
    "length_constraints:number_words": InstructionSpec(length.number_words, {"num_words": F.integer, **_COUNT}),
    "length_constraints:nth_paragraph_first_word": InstructionSpec(
        length.nth_paragraph_first_word,
        {"num_paragraphs": F.positive, "nth_paragraph": F.positive, "first_word": F.text}),
    "detectable_content:number_placeholders": InstructionSpec(
        detectable.number_placeholders, {"num_placeholders": F.integer}),
    "detectable_content:postscript": InstructionSpec(detectable.postscript, {"postscript_marker": F.text}),
    "detectable_format:number_bullet_lists": InstructionSpec(
        detectable.number_bullet_lists, {"num_bullets": F.integer}),
    "detectable_format:constrained_response": InstructionSpec(detectable.constrained_response, {}),
    "detectable_format:number_highlighted_sections": InstructionSpec(
        detectable.number_highlighted_sections, {"num_highlights": F.integer}),
    "detectable_format:multiple_sections": InstructionSpec(
        detectable.multiple_sections, {"section_spliter": F.text, "num_sections": F.integer}),
    "detectable_format:json_format": InstructionSpec(detectable.json_format, {}),
    "detectable_format:title": InstructionSpec(detectable.title, {}),
    "combination:two_responses": InstructionSpec(startend.two_responses, {}),
    "combination:repeat_prompt": InstructionSpec(startend.repeat_prompt, {"prompt_to_repeat": F.text}),
    "startend:end_checker": InstructionSpec(startend.end_checker, {"end_phrase": F.text}),
    "change_case:capital_word_frequency": InstructionSpec(
        language.capital_word_frequency, {"capital_frequency": F.integer, "capital_relation": F.relation}),
    "change_case:english_capital": InstructionSpec(language.english_capital, {}),
    "change_case:english_lowercase": InstructionSpec(language.english_lowercase, {}),
    "punctuation:no_comma": InstructionSpec(startend.no_comma, {}),
    "startend:quotation": InstructionSpec(startend.quotation, {}),
}


def validate_kwargs(instruction_id: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Cleaned kwargs for ``instruction_id``; raises on unknown ids and bad, missing or extra fields."""
    if not isinstance(instruction_id, str) or instruction_id not in INSTRUCTIONS:
        raise ValueError(f"unknown instruction id {instruction_id!r}; known: {sorted(INSTRUCTIONS)}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{instruction_id}: kwargs must be a dict, got {type(kwargs).__name__}")
    spec = INSTRUCTIONS[instruction_id]
    given = {k: v for k, v in kwargs.items() if not F.is_missing(v)}
    extra = sorted(set(given) - set(spec.fields))
    if extra:
        raise TypeError(f"{instruction_id}: unexpected kwargs {extra}; expected {sorted(spec.fields)}")
    cleaned = {}
    for name, validate in spec.fields.items():
        if name not in given:
            raise ValueError(f"{instruction_id}: missing kwarg {name!r}")
        try:
            cleaned[name] = validate(given[name])
        except (TypeError, ValueError) as error:
            raise type(error)(f"{instruction_id}: kwarg {name!r}: {error}") from None
    if "nth_paragraph" in cleaned and cleaned["nth_paragraph"] > cleaned["num_paragraphs"]:
        raise ValueError(f"{instruction_id}: kwarg 'nth_paragraph' exceeds 'num_paragraphs'")
    return cleaned


def validate_all(
    instruction_id_list: Sequence[str], kwargs: Sequence[Mapping[str, Any] | None]
) -> list[tuple[InstructionSpec, dict[str, Any]]]:
    """Specs with cleaned kwargs for a whole instruction list (lengths must agree)."""
    if isinstance(instruction_id_list, str) or not isinstance(instruction_id_list, Sequence):
        raise TypeError(f"instruction_id_list must be a list of str, got {type(instruction_id_list).__name__}")
    if isinstance(kwargs, (str, Mapping)) or not isinstance(kwargs, Sequence):
        raise TypeError(f"kwargs must be a list of dicts, got {type(kwargs).__name__}")
    if len(instruction_id_list) != len(kwargs):
        raise ValueError(f"{len(instruction_id_list)} instruction ids but {len(kwargs)} kwargs entries")
    if not instruction_id_list:
        raise ValueError("instruction_id_list is empty: there is nothing to follow")
    cleaned = [validate_kwargs(i, k) for i, k in zip(instruction_id_list, kwargs)]
    return [(INSTRUCTIONS[i], c) for i, c in zip(instruction_id_list, cleaned)]
