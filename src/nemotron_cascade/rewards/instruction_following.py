"""Instruction-following reward: IFEval-style checkers, offline and deterministic.

``if_reward(response, instruction_id_list, kwargs) -> {0.0, 1.0}``: 1.0 iff the final answer follows
every instruction. Ids and kwargs names follow Google's IFEval (``instructions_registry.py``); the 25
ids are the keys of :data:`INSTRUCTIONS`, one table that maps each id to its checker and its kwargs
schema. Checking mirrors IFEval's rules (noted per checker) with these deliberate differences:

* no NLTK and no ``langdetect``: words are ``\\w+`` runs, sentences come from a small regex splitter,
  and the language is detected by script and stop words (:func:`detect_language`). As in IFEval, a
  text whose language cannot be detected counts as following a language instruction;
* bullets are lines starting with ``* `` or ``- `` (IFEval also counts ``---`` rules as bullets);
* paragraphs for ``nth_paragraph_first_word`` are separated by blank lines (any whitespace inside);
* kwargs are validated: unknown ids, missing/ill-typed/out-of-range fields and unexpected keys raise
  (never a silent 0). Keys whose value is ``None`` (or NaN, as pandas writes a missing number) are
  ignored, as IFEval's JSONL carries them.

Strict mode judges the final answer as is; loose mode (IFEval's upper bound) also accepts the answer
with its first line, last line or both removed, and each of those with ``*`` removed.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nemotron_cascade.rewards.answers import final_answer

logger = logging.getLogger(__name__)

RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


# --------------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+")
_CAPITAL_WORD = re.compile(r"\w+(?:[-'’]\w+)*")
_ABBREVIATIONS = re.compile(
    r"\b(Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|vs|etc|Inc|Ltd|Co|Corp|Fig|approx|e\.g|i\.e|a\.m|p\.m|U\.S)\.",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs (IFEval's ``RegexpTokenizer(r"\\w+")``)."""
    return len(_WORD.findall(text))


def split_sentences(text: str) -> list[str]:
    """Sentences: runs ending in ``.``, ``!`` or ``?`` before whitespace; abbreviations, initials and
    decimals do not end a sentence; a trailing fragment without a stop counts as one."""
    protected = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\0"), text)
    protected = re.sub(r"\b([A-Z])\.(?=\s+[A-Z])", "\\1\0", protected)  # initials: "J. Smith"
    pieces = _SENTENCE_END.split(protected)
    return [p.replace("\0", ".").strip() for p in pieces if _WORD.search(p)]


def count_sentences(text: str) -> int:
    """Number of sentences found by :func:`split_sentences`."""
    return len(split_sentences(text))


def _compare(count: int, relation: str, threshold: int) -> bool:
    """IFEval's two relations: ``less than`` is ``<``, ``at least`` is ``>=``."""
    return count < threshold if relation == "less than" else count >= threshold


# --------------------------------------------------------------------------------------------------
# Language detection (deterministic, offline)
# --------------------------------------------------------------------------------------------------
_SCRIPTS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("latin", ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF))),
    ("cyrillic", ((0x400, 0x4FF),)),
    ("greek", ((0x370, 0x3FF),)),
    ("arabic", ((0x600, 0x6FF), (0x750, 0x77F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))),
    ("hebrew", ((0x590, 0x5FF),)),
    ("devanagari", ((0x900, 0x97F),)),
    ("bn", ((0x980, 0x9FF),)),
    ("pa", ((0xA00, 0xA7F),)),
    ("gu", ((0xA80, 0xAFF),)),
    ("ta", ((0xB80, 0xBFF),)),
    ("te", ((0xC00, 0xC7F),)),
    ("kn", ((0xC80, 0xCFF),)),
    ("ml", ((0xD00, 0xD7F),)),
    ("th", ((0xE00, 0xE7F),)),
    ("ko", ((0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3130, 0x318F))),
    ("kana", ((0x3040, 0x30FF),)),
    ("han", ((0x4E00, 0x9FFF), (0x3400, 0x4DBF))),
)

_STOP_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and is are of that it with for this was be you have not they from what which "
        "there their will would can should been has were an by we or at but",
        "es": "el los las que y es por con para una del se su al lo como más pero sus le ya muy "
        "también fue está son este esta hay",
        "pt": "os que é do da em um uma não para com por mais dos das se na mas foi ao ele ela "
        "também são está muito isso",
        "fr": "le les des et est une du que qui dans pour pas sur au avec ce il je vous nous "
        "sont mais plus cette aux été",
        "de": "der die das und ist nicht ein eine zu den mit von sich auf für dem auch es ich wir "
        "sie wird sind oder aber",
        "it": "il di che è un una per non del della sono con si gli da al nel anche come più ma "
        "questo questa",
        "pl": "się nie jest że na do jak co ale od po są czy tak jego przez dla oraz być",
        "fi": "ja ei että oli ole ovat mutta kun niin hän myös tämä joka kuin minä sinä se olla",
        "sw": "ya wa kwa ni za katika cha kuwa hii yake wake lakini pia sana watu na",
        "vi": "và của là không có những được trong một các cho với này người đã",
        "nl": "het een en van dat niet op te zijn voor met ook maar er bij",
    }.items()
}
_LATIN_MARKERS = {"es": "ñ¿¡", "pt": "ãõ", "de": "ßü", "pl": "ąęłśźżćń", "vi": "đơưạảấầẩẫậắằẳẵặẹẻẽếềểễệ"}
_DEVANAGARI_WORDS = {
    "hi": frozenset("है हैं के की में और का से नहीं यह को था".split()),
    "mr": frozenset("आहे आणि आहेत हे ते नाही मध्ये या होते".split()),
    "ne": frozenset("छ छन् र को मा हो पनि गर्न यो थियो".split()),
}

SUPPORTED_LANGUAGES = frozenset(
    ["en", "es", "pt", "fr", "de", "it", "pl", "fi", "sw", "vi", "nl", "ru", "uk", "bg", "el", "ar",
     "fa", "ur", "he", "hi", "mr", "ne", "bn", "pa", "gu", "ta", "te", "kn", "ml", "th", "ko", "ja",
     "zh"]
)


def _script_of(char: str) -> str | None:
    """Name of the script table entry that holds ``char``."""
    code = ord(char)
    for name, ranges in _SCRIPTS:
        if any(low <= code <= high for low, high in ranges):
            return name
    return None


def _best(scores: Mapping[str, float]) -> str | None:
    """The key with the strictly highest positive score, else ``None``."""
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    if not ranked or ranked[0][1] <= 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]


def _detect_latin(text: str) -> str | None:
    """Latin-script language by stop-word hits plus a bonus for language-specific letters."""
    words = [w.lower() for w in _WORD.findall(text)]
    lowered = text.lower()
    scores = {lang: float(sum(w in stops for w in words)) for lang, stops in _STOP_WORDS.items()}
    for lang, letters in _LATIN_MARKERS.items():
        scores[lang] += 2.0 * sum(lowered.count(c) for c in letters)
    return _best(scores)


def _detect_arabic(text: str) -> str:
    """Urdu and Persian by their own letters, else Arabic."""
    if any(c in text for c in "ٹڈڑںے"):
        return "ur"
    persian = sum(text.count(c) for c in "پچژگکی")
    arabic = sum(text.count(c) for c in "يكة")
    return "fa" if persian > arabic else "ar"


def _detect_cyrillic(text: str) -> str:
    """Ukrainian and Bulgarian by their own letters, else Russian."""
    lowered = text.lower()
    if any(c in lowered for c in "іїєґ"):
        return "uk"
    if "ъ" in lowered and not any(c in lowered for c in "ыэё"):
        return "bg"
    return "ru"


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language, or ``None`` when it cannot be told.

    The dominant script decides most languages outright; Latin, Cyrillic, Arabic and Devanagari
    scripts are split further by letters and stop words. Deterministic and offline.
    """
    counts = Counter(s for s in map(_script_of, text) if s is not None)
    if not counts:
        return None
    if counts["kana"] and counts["kana"] * 10 >= counts["kana"] + counts["han"]:
        return "ja"
    counts["han"] += counts.pop("kana", 0)
    script = counts.most_common(1)[0][0]
    if script == "latin":
        return _detect_latin(text)
    if script == "devanagari":
        return _best({lang: sum(w in s for w in text.split()) for lang, s in _DEVANAGARI_WORDS.items()})
    fixed = {"cyrillic": _detect_cyrillic, "arabic": _detect_arabic}
    if script in fixed:
        return fixed[script](text)
    return {"greek": "el", "hebrew": "he", "han": "zh"}.get(script, script)


def _language_or_unknown(text: str, language: str) -> bool:
    """IFEval's rule: the detected language must match; an undetectable text counts as matching."""
    detected = detect_language(text)
    if detected is None:
        logger.debug("language of %r not detected: counted as followed", text[:80])
        return True
    return detected == language


# --------------------------------------------------------------------------------------------------
# Checkers: check(text, **kwargs) -> bool, on the (non-empty) final answer
# --------------------------------------------------------------------------------------------------
def _keywords_existence(text: str, *, keywords: list[str]) -> bool:
    """Every keyword occurs (case-insensitive substring, as IFEval)."""
    return all(re.search(re.escape(k), text, re.IGNORECASE) for k in keywords)


def _keywords_frequency(text: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """Case-insensitive occurrences of ``keyword`` compared with ``frequency``."""
    found = len(re.findall(re.escape(keyword.strip()), text, re.IGNORECASE))
    return _compare(found, relation, frequency)


def _forbidden_words(text: str, *, forbidden_words: list[str]) -> bool:
    """No forbidden word occurs as a whole word (case-insensitive)."""
    return not any(re.search(r"\b" + re.escape(w) + r"\b", text, re.IGNORECASE) for w in forbidden_words)


def _letter_frequency(text: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    """Case-insensitive count of one letter compared with ``let_frequency``."""
    return _compare(text.lower().count(letter.lower()), let_relation, let_frequency)


def _response_language(text: str, *, language: str) -> bool:
    """The whole answer is in ``language`` (undetectable counts as followed, as IFEval)."""
    return _language_or_unknown(text, language)


def _number_sentences(text: str, *, num_sentences: int, relation: str) -> bool:
    """Sentence count compared with ``num_sentences``."""
    return _compare(count_sentences(text), relation, num_sentences)


def _number_paragraphs(text: str, *, num_paragraphs: int) -> bool:
    """Exactly ``num_paragraphs`` paragraphs separated by ``***``; an empty inner one fails."""
    paragraphs = re.split(r"\s?\*\*\*\s?", text)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False
    return count == num_paragraphs


def _number_words(text: str, *, num_words: int, relation: str) -> bool:
    """Word count compared with ``num_words``."""
    return _compare(count_words(text), relation, num_words)


def _first_word(paragraph: str) -> str:
    """First word of a paragraph, lower case, without leading quotes or trailing punctuation."""
    word = paragraph.split()[0].lstrip("'\"“‘*#")
    return re.split(r"[.,?!'\"’”:;]", word, maxsplit=1)[0].lower()


def _nth_paragraph_first_word(
    text: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    """Exactly ``num_paragraphs`` blank-line-separated paragraphs; the n-th starts with ``first_word``."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) != num_paragraphs or nth_paragraph > len(paragraphs):
        return False
    return _first_word(paragraphs[nth_paragraph - 1]) == first_word.strip().lower()


def _number_placeholders(text: str, *, num_placeholders: int) -> bool:
    """At least ``num_placeholders`` ``[...]`` placeholders."""
    return len(re.findall(r"\[.*?\]", text)) >= num_placeholders


def _postscript(text: str, *, postscript_marker: str) -> bool:
    """A line starts with the marker (``P.S.`` and ``P.P.S`` tolerate spaces, as IFEval)."""
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return bool(re.search(pattern, text.lower(), flags=re.MULTILINE))


def _number_bullet_lists(text: str, *, num_bullets: int) -> bool:
    """Exactly ``num_bullets`` lines that start with ``* `` or ``- `` (after indentation)."""
    return len(re.findall(r"^[ \t]*[*-][ \t]+\S", text, flags=re.MULTILINE)) == num_bullets


def _constrained_response(text: str) -> bool:
    """Contains one of IFEval's three options (``My answer is yes.`` ...)."""
    return any(option in text for option in CONSTRAINED_RESPONSE_OPTIONS)


def _number_highlighted_sections(text: str, *, num_highlights: int) -> bool:
    """At least ``num_highlights`` non-empty ``*...*`` or ``**...**`` spans on one line."""
    singles = [h for h in re.findall(r"\*[^\n*]*\*", text) if h.strip("*").strip()]
    doubles = [h for h in re.findall(r"\*\*[^\n*]*\*\*", text) if h[2:-2].strip()]
    return len(singles) + len(doubles) >= num_highlights


def _multiple_sections(text: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least ``num_sections`` sections, each opened by ``<spliter> <number>``."""
    pattern = r"\s?" + re.escape(section_spliter.strip()) + r"\s?\d+\s?"
    return len(re.split(pattern, text)) - 1 >= num_sections


def _json_format(text: str) -> bool:
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


def _title(text: str) -> bool:
    """A non-empty title in double angular brackets, ``<<like this>>``, on one line."""
    return any(t[2:-2].strip() for t in re.findall(r"<<[^\n]+>>", text))


def _two_responses(text: str) -> bool:
    """Two different responses separated by ``******`` (no empty response in between)."""
    valid = []
    parts = text.split("******")
    for index, part in enumerate(parts):
        if part.strip():
            valid.append(part.strip())
        elif index not in (0, len(parts) - 1):
            return False
    return len(valid) == 2 and valid[0] != valid[1]


def _repeat_prompt(text: str, *, prompt_to_repeat: str) -> bool:
    """The answer starts with the prompt, word for word (case-insensitive)."""
    return text.strip().lower().startswith(prompt_to_repeat.strip().lower())


def _end_checker(text: str, *, end_phrase: str) -> bool:
    """The answer (stripped of outer double quotes) ends with ``end_phrase`` (case-insensitive)."""
    return text.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def _capital_word_frequency(text: str, *, capital_frequency: int, capital_relation: str) -> bool:
    """Words in all capitals (hyphenated words count once) compared with ``capital_frequency``."""
    capitals = sum(1 for word in _CAPITAL_WORD.findall(text) if word.isupper())
    return _compare(capitals, capital_relation, capital_frequency)


def _english_capital(text: str) -> bool:
    """All letters upper case and the language English (or undetectable)."""
    return text.isupper() and _language_or_unknown(text, "en")


def _english_lowercase(text: str) -> bool:
    """All letters lower case and the language English (or undetectable)."""
    return text.islower() and _language_or_unknown(text, "en")


def _no_comma(text: str) -> bool:
    """No ASCII comma anywhere."""
    return "," not in text


def _quotation(text: str) -> bool:
    """The answer is wrapped in double quotation marks."""
    body = text.strip()
    return len(body) > 1 and body[0] == '"' and body[-1] == '"'


# --------------------------------------------------------------------------------------------------
# Kwargs schema
# --------------------------------------------------------------------------------------------------
class _Field:
    """Validators: each returns the cleaned value or raises ``TypeError``/``ValueError`` (bare text)."""

    @staticmethod
    def integer(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")
        if value < 0:
            raise ValueError(f"expected a non-negative int, got {value}")
        return value

    @staticmethod
    def positive(value: Any) -> int:
        number = _Field.integer(value)
        if number < 1:
            raise ValueError(f"expected an int >= 1, got {number}")
        return number

    @staticmethod
    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a str, got {type(value).__name__} {value!r}")
        if not value.strip():
            raise ValueError("expected a non-empty str")
        return value

    @staticmethod
    def texts(value: Any) -> list[str]:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list of str, got {type(value).__name__} {value!r}")
        if not value:
            raise ValueError("expected a non-empty list of str")
        return [_Field.text(v) for v in value]

    @staticmethod
    def relation(value: Any) -> str:
        text = _Field.text(value)
        if text not in RELATIONS:
            raise ValueError(f"expected one of {RELATIONS}, got {text!r}")
        return text

    @staticmethod
    def letter(value: Any) -> str:
        text = _Field.text(value).strip()
        if len(text) != 1 or not text.isalpha():
            raise ValueError(f"expected a single letter, got {value!r}")
        return text.lower()

    @staticmethod
    def language(value: Any) -> str:
        code = _Field.text(value).strip().lower()
        code = "zh" if code.startswith("zh") else code
        if code not in SUPPORTED_LANGUAGES:
            raise ValueError(f"unsupported language code {value!r}; supported: {sorted(SUPPORTED_LANGUAGES)}")
        return code


@dataclass(frozen=True)
class InstructionSpec:
    """One IFEval instruction: its checker and the kwargs it requires (name → validator)."""

    check: Callable[..., bool]
    fields: Mapping[str, Callable[[Any], Any]]


_F = _Field
INSTRUCTIONS: dict[str, InstructionSpec] = {
    "keywords:existence": InstructionSpec(_keywords_existence, {"keywords": _F.texts}),
    "keywords:frequency": InstructionSpec(
        _keywords_frequency, {"keyword": _F.text, "frequency": _F.integer, "relation": _F.relation}
    ),
    "keywords:forbidden_words": InstructionSpec(_forbidden_words, {"forbidden_words": _F.texts}),
    "keywords:letter_frequency": InstructionSpec(
        _letter_frequency, {"letter": _F.letter, "let_frequency": _F.integer, "let_relation": _F.relation}
    ),
    "language:response_language": InstructionSpec(_response_language, {"language": _F.language}),
    "length_constraints:number_sentences": InstructionSpec(
        _number_sentences, {"num_sentences": _F.integer, "relation": _F.relation}
    ),
    "length_constraints:number_paragraphs": InstructionSpec(
        _number_paragraphs, {"num_paragraphs": _F.positive}
    ),
    "length_constraints:number_words": InstructionSpec(
        _number_words, {"num_words": _F.integer, "relation": _F.relation}
    ),
    "length_constraints:nth_paragraph_first_word": InstructionSpec(
        _nth_paragraph_first_word,
        {"num_paragraphs": _F.positive, "nth_paragraph": _F.positive, "first_word": _F.text},
    ),
    "detectable_content:number_placeholders": InstructionSpec(
        _number_placeholders, {"num_placeholders": _F.integer}
    ),
    "detectable_content:postscript": InstructionSpec(_postscript, {"postscript_marker": _F.text}),
    "detectable_format:number_bullet_lists": InstructionSpec(_number_bullet_lists, {"num_bullets": _F.integer}),
    "detectable_format:constrained_response": InstructionSpec(_constrained_response, {}),
    "detectable_format:number_highlighted_sections": InstructionSpec(
        _number_highlighted_sections, {"num_highlights": _F.integer}
    ),
    "detectable_format:multiple_sections": InstructionSpec(
        _multiple_sections, {"section_spliter": _F.text, "num_sections": _F.integer}
    ),
    "detectable_format:json_format": InstructionSpec(_json_format, {}),
    "detectable_format:title": InstructionSpec(_title, {}),
    "combination:two_responses": InstructionSpec(_two_responses, {}),
    "combination:repeat_prompt": InstructionSpec(_repeat_prompt, {"prompt_to_repeat": _F.text}),
    "startend:end_checker": InstructionSpec(_end_checker, {"end_phrase": _F.text}),
    "change_case:capital_word_frequency": InstructionSpec(
        _capital_word_frequency, {"capital_frequency": _F.integer, "capital_relation": _F.relation}
    ),
    "change_case:english_capital": InstructionSpec(_english_capital, {}),
    "change_case:english_lowercase": InstructionSpec(_english_lowercase, {}),
    "punctuation:no_comma": InstructionSpec(_no_comma, {}),
    "startend:quotation": InstructionSpec(_quotation, {}),
}


def _is_missing(value: Any) -> bool:
    """``None`` or a float NaN (how pandas stores a missing number)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def validate_kwargs(instruction_id: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Cleaned kwargs for ``instruction_id``; raises on unknown ids and bad, missing or extra fields."""
    if not isinstance(instruction_id, str) or instruction_id not in INSTRUCTIONS:
        raise ValueError(f"unknown instruction id {instruction_id!r}; known: {sorted(INSTRUCTIONS)}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{instruction_id}: kwargs must be a dict, got {type(kwargs).__name__}")
    spec = INSTRUCTIONS[instruction_id]
    given = {k: v for k, v in kwargs.items() if not _is_missing(v)}
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


def _validate_all(
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


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
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
    checks = _validate_all(instruction_id_list, kwargs)
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
