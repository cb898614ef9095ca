"""Benchmark sources (``bench`` rows; decontamination reads their text fields): AIME, MATH-500,
GPQA-diamond, LiveCodeBench, IFEval. SWE-bench Verified maps like SWE-bench (:mod:`.swe`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from nemotron_cascade.data.sources.code import stdio_text
from nemotron_cascade.data.sources.fields import LETTERS, RowError, clean_answer, json_of, text_of, value_of


def map_aime(raw: Mapping) -> dict:
    """HuggingFaceH4/aime_2024 and AI-MO/aimo-validation-aime (``train``): ``id``, ``problem``,
    ``solution``, ``answer`` (text or an integer), ``url`` (+ ``year``), per their dataset viewers."""
    value = value_of(raw, "answer")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        answer = str(int(value)) if float(value).is_integer() else str(value)
    else:
        answer = clean_answer(text_of(raw, "answer"))
    return {"prompt": text_of(raw, "problem"), "answer": answer}


def map_math500(raw: Mapping) -> dict:
    """HuggingFaceH4/MATH-500 (``test``): ``problem``, ``solution``, ``answer``, ``subject``,
    ``level``, ``unique_id``."""
    return {"prompt": text_of(raw, "problem"), "answer": clean_answer(text_of(raw, "answer")),
            "subject": raw.get("subject"), "level": raw.get("level")}


def _stable_shuffle(items: list[str], key: str) -> list[str]:
    return sorted(items, key=lambda s: hashlib.sha1(f"{key}|{s}".encode()).hexdigest())


def map_gpqa(raw: Mapping) -> dict:
    """Idavidrein/gpqa, config ``gpqa_diamond``, split ``train`` (gated). Columns from the card:
    ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``, ``Explanation``, ``Record ID``, ...
    The four answers are shuffled by a stable hash of the question, so the letter is reproducible."""
    question = text_of(raw, "Question").strip()
    correct = text_of(raw, "Correct Answer").strip()
    wrong = [text_of(raw, f"Incorrect Answer {i}").strip() for i in (1, 2, 3)]
    choices = _stable_shuffle([correct, *wrong], question)
    options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return {"prompt": f"{question}\n\n{options}\n\nAnswer with the letter of the correct choice.",
            "answer": LETTERS[choices.index(correct)], "choices": choices, "answer_format": "choice"}


def map_livecodebench(raw: Mapping) -> dict:
    """livecodebench/code_generation_lite (``test``): ``question_title``, ``question_content``,
    ``platform``, ``question_id``, ``contest_id``, ``contest_date``, ``starter_code``,
    ``difficulty``, ``public_test_cases`` / ``private_test_cases`` (JSON lists of ``{input, output,
    testtype}``), ``metadata``. Only ``stdin`` problems map; private tests stored compressed
    (base64/zlib/pickle in newer releases) are not decoded here — we never unpickle downloads."""
    tests = []
    for name in ("public_test_cases", "private_test_cases"):
        try:
            cases = json_of(raw, name) if name == "public_test_cases" or raw.get(name) else []
        except RowError:
            if name == "public_test_cases":
                raise
            cases = []
        if not isinstance(cases, list):
            raise RowError(name, "expected a JSON list of test cases")
        for i, case in enumerate(cases):
            if not isinstance(case, dict):
                raise RowError(name, f"case {i} is not an object")
            if case.get("testtype") != "stdin":
                raise RowError(name, f"case {i} has testtype {case.get('testtype')!r}: stdin/stdout only")
            tests.append({"input": stdio_text(case.get("input"), name, "input", i),
                          "output": stdio_text(case.get("output"), name, "output", i)})
    if not tests:
        raise RowError("public_test_cases", "no tests")
    return {"prompt": text_of(raw, "question_content"), "tests": tests, "verifiable": True,
            "difficulty": raw.get("difficulty"), "origin": raw.get("platform")}


def map_ifeval(raw: Mapping) -> dict:
    """google/IFEval (``train``): ``key``, ``prompt``, ``instruction_id_list``, ``kwargs``. On the
    Hub every kwargs object carries every argument name, unused ones null: nulls are dropped.
    ``task_text`` is the whole prompt (IFEval's requests and constraints are one text), the field
    the IF training rows are decontaminated on (:mod:`.instruction_following`)."""
    ids = value_of(raw, "instruction_id_list")
    kwargs = json_of(raw, "kwargs")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
        raise RowError("instruction_id_list", "expected a non-empty list of instruction ids")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise RowError("kwargs", f"expected {len(ids)} objects, one per instruction")
    prompt = text_of(raw, "prompt")
    return {"prompt": prompt, "task_text": prompt, "instruction_id_list": list(ids),
            "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in kwargs]}
