"""The paper's public data sources, mapped onto our per-domain task schemas (``schemas.py``).

One mapper per source turns a raw row, exactly as ``datasets.load_dataset`` yields it, into the
fields of a ``task.<domain>`` row; :func:`map_rows` adds ``id``/``domain``/``split``/``source`` and
validates the result. A row that cannot be mapped is never dropped silently: it becomes a *reject*
``{"source", "row", "field", "reason", "raw_id", "kind"}`` that the caller can quarantine
(``kind`` is ``"invalid"``, or ``"duplicate"`` for a second row of the same task, e.g. one more
teacher solution of the same OpenMathReasoning problem).

=======================  ==========================================  =========================================
name                     HF dataset (config / split)                 domain, what the mapper reads
=======================  ==========================================  =========================================
acemath_instruct         nvidia/AceMath-Instruct-Training-Data       math: ``messages``, ``answer``
                         (math_sft)
numina_math_cot          AI-MO/NuminaMath-CoT (train)                math: ``problem``, ``\\boxed{}`` of ``solution``
open_math_reasoning      nvidia/OpenMathReasoning (cot)              math: ``problem``, ``expected_answer``
taco                     BAAI/TACO (ALL/train parquet)               code: ``question``, ``input_output``
apps                     codeparrot/apps (train.jsonl)               code: ``question``, ``input_output``
open_code_reasoning      nvidia/OpenCodeReasoning (split_0)          code (SFT only, no tests): ``input``
s1k                      simplescaling/s1K (train)                   science: ``question``, ``solution``
llama_nemotron_science   nvidia/Llama-Nemotron-Post-Training-        science: ``input``, ``output``
                         Dataset (SFT / science)
swe_bench_train          princeton-nlp/SWE-bench (train)            swe: ``problem_statement``, ``patch``
swe_smith                SWE-bench/SWE-smith (train)                 swe: ``problem_statement``, reversed ``patch``
swe_fixer                internlm/SWE-Fixer-Train-110K (train)       swe: ``problem_statement``, ``patch``
xlam_function_calling    Salesforce/xlam-function-calling-60k        tool_calling: ``query``, ``tools``, ``answers``
=======================  ==========================================  =========================================

Benchmarks (:data:`BENCHMARKS`, decontamination reads their ``text_fields``; their mappers make
``bench`` rows): AIME 2024, AIMO AIME validation, MATH-500, GPQA-diamond, LiveCodeBench
(code_generation_lite), IFEval, SWE-bench Verified.

Decisions worth knowing:

* **Code** tasks keep only stdin/stdout problems (our verifier runs programs on stdin): a TACO/APPS
  ``input_output`` with ``fn_name`` (call-based, LeetCode/Codewars style) is rejected with that reason,
  and so is a LiveCodeBench problem with ``functional`` tests. OpenCodeReasoning has no tests at all:
  its rows get ``tests: []`` and ``verifiable: False`` and always land in the ``sft`` split (the code
  verifier refuses an empty test list, so they must never reach RL).
* **Science** tasks are multiple choice (``choices`` + a letter ``answer``) when the question lists
  lettered options; otherwise they are free-form (``choices: []``, ``answer_format: "free_form"``,
  the answer read from ``\\boxed{}``): fine as SFT prompts, not gradable by ``science_reward``.
* **SWE** tasks from real repositories cannot carry the repository: ``repo`` is ``{}`` (not
  hydrated), ``repo_name`` + ``base_commit`` say where to fetch it, ``files`` are the files the gold
  patch touches (parsed with ``unidiff``) and ``file`` the one it changes most. A hydration step
  (checkout at ``base_commit``, read ``files`` and BM25 candidates) must fill ``repo`` before
  localisation / ``world.swe_prompt``. SWE-smith's ``patch`` *introduces* the bug (SWE-smith's
  ``harness/gather.py`` applies it to build the buggy branch, whose commit is ``base_commit``), so
  the gold fix is its reverse (:func:`reverse_patch`).
* Splits: benchmark rows are ``bench``; training rows are ``rl`` for a stable ``rl_share`` of their
  keys (a hash of the prompt, or of the native id for SWE) and ``sft`` otherwise.
* Ids are ``<source>-<sha1(key)[:12]>``: stable across runs, equal for the same problem.

Scripted repositories (TACO, APPS, LiveCodeBench) are read through the packaged ``json`` /
``parquet`` builders on their ``hf://`` data files, because ``datasets`` >= 4 refuses loading scripts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Mapping

import unidiff
from unidiff.constants import LINE_TYPE_ADDED, LINE_TYPE_NO_NEWLINE, LINE_TYPE_REMOVED

from nemotron_cascade.data.schemas import validate_row
from nemotron_cascade.rewards.answers import final_answer, last_boxed
from nemotron_cascade.rewards.science import choice_letter, extract_choice

logger = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"
DEV_NULL = "/dev/null"


class RowError(ValueError):
    """A raw row that cannot be mapped; ``field`` names the raw column at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field '{field}': {message}")
        self.field, self.message = field, message


# --------------------------------------------------------------------------------------------
# Field readers: every problem names its column
def _value(raw: Mapping, name: str) -> Any:
    """The column's value; a missing column and a null (how a JSON/Arrow table fills a row that
    lacks it) are both "missing"."""
    if name not in raw or raw[name] is None:
        raise RowError(name, "missing")
    return raw[name]


def _text(raw: Mapping, name: str) -> str:
    """A non-empty string column."""
    value = _value(raw, name)
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(name, "empty")
    return value


def _json(raw: Mapping, name: str) -> Any:
    """A column holding JSON text (already-decoded lists/dicts pass through)."""
    value = _value(raw, name)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError(name, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _string_list(raw: Mapping, name: str) -> list[str]:
    """A list of strings stored as a list or as JSON text (SWE-bench's ``FAIL_TO_PASS``)."""
    value = _json(raw, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowError(name, "expected a list of strings")
    return value


def _messages(raw: Mapping, name: str) -> list[dict]:
    value = _value(raw, name)
    if not isinstance(value, list) or not all(isinstance(m, Mapping) and isinstance(m.get("content"), str)
                                              for m in value):
        raise RowError(name, "expected a list of {role, content} messages")
    return list(value)


def _turn(messages: list[dict], role: str, name: str, last: bool = False) -> str:
    contents = [m["content"] for m in messages if m.get("role") == role and m["content"].strip()]
    if not contents:
        raise RowError(name, f"no non-empty '{role}' message")
    return contents[-1] if last else contents[0]


def clean_answer(answer: str) -> str:
    """An answer without surrounding space, ``$...$`` or a whole-answer ``\\boxed{...}``."""
    answer = answer.strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    boxed = last_boxed(answer)
    if boxed is not None and answer.startswith("\\boxed") and answer.endswith("}"):
        answer = boxed
    return answer


def boxed_answer(text: str, name: str) -> str:
    """The last ``\\boxed{}`` answer of a solution (after its think block, if any)."""
    answer = final_answer(text)
    boxed = last_boxed(answer if answer is not None else text)
    if not boxed or not boxed.strip():
        raise RowError(name, "no \\boxed{} answer")
    return boxed.strip()


# --------------------------------------------------------------------------------------------
# Math
def map_acemath_instruct(raw: Mapping) -> dict:
    """nvidia/AceMath-Instruct-Training-Data, split ``math_sft``.

    Columns from the dataset card's ``dataset_info``: ``messages`` (list of ``{role, content}``: the
    user prompt and the Qwen2.5-Math-72B answer) and ``answer`` (the final answer; may be empty, then
    the answer's last ``\\boxed{}`` is used).
    """
    messages = _messages(raw, "messages")
    prompt = _turn(messages, "user", "messages")
    given = raw.get("answer")
    if isinstance(given, str) and given.strip():
        answer = clean_answer(given)
    else:
        answer = boxed_answer(_turn(messages, "assistant", "messages", last=True), "messages")
    return {"prompt": prompt, "answer": answer}


def map_numina_math_cot(raw: Mapping) -> dict:
    """AI-MO/NuminaMath-CoT, split ``train``.

    Columns from the dataset card: ``source`` (e.g. ``cn_k12``, ``aops_forum``), ``problem``,
    ``solution`` (CoT ending in ``\\boxed{}``), ``messages``. The answer is the solution's last box;
    a solution without one (proofs) is rejected.
    """
    return {"prompt": _text(raw, "problem"), "answer": boxed_answer(_text(raw, "solution"), "solution"),
            "origin": raw.get("source")}


def map_open_math_reasoning(raw: Mapping) -> dict:
    """nvidia/OpenMathReasoning, split ``cot`` (also ``tir``, ``genselect``).

    Columns from the dataset card's ``dataset_info``: ``expected_answer``, ``problem_type``,
    ``problem_source``, ``generation_model``, ``problem``, ``generated_solution``,
    ``inference_mode``. Several rows share a problem (one per generated solution): they map to the
    same task id and the repeats are reported as duplicates.
    """
    prompt = _text(raw, "problem")
    given = raw.get("expected_answer")
    if isinstance(given, str) and given.strip():
        answer = clean_answer(given)
    else:
        answer = boxed_answer(_text(raw, "generated_solution"), "expected_answer")
    return {"prompt": prompt, "answer": answer, "problem_type": raw.get("problem_type"),
            "origin": raw.get("problem_source")}


# --------------------------------------------------------------------------------------------
# Code
def _stdio(value: Any, name: str, what: str, i: int) -> str:
    """One stdin or stdout text: a string, or a list of lines (joined, newline-terminated)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "\n".join(v.rstrip("\n") for v in value) + "\n"
    if not isinstance(value, str):
        raise RowError(name, f"{what}[{i}] is a {type(value).__name__}, not stdin/stdout text")
    return value


def parse_io_tests(raw: Mapping, name: str = "input_output") -> list[dict]:
    """APPS/TACO ``input_output``: JSON ``{"inputs": [...], "outputs": [...]}`` of stdin/stdout
    texts, as stdin/stdout tests. Call-based problems (``fn_name``) are rejected."""
    data = _json(raw, name)
    if not isinstance(data, dict):
        raise RowError(name, f"expected a JSON object with 'inputs' and 'outputs', got {type(data).__name__}")
    if data.get("fn_name"):
        raise RowError(name, f"call-based problem (fn_name={data['fn_name']!r}): the code verifier "
                             "runs stdin/stdout programs only")
    inputs, outputs = data.get("inputs"), data.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise RowError(name, "'inputs' and 'outputs' must be lists")
    if len(inputs) != len(outputs):
        raise RowError(name, f"{len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise RowError(name, "no tests")
    return [{"input": _stdio(x, name, "inputs", i), "output": _stdio(y, name, "outputs", i)}
            for i, (x, y) in enumerate(zip(inputs, outputs))]


def _first_solution(raw: Mapping) -> str | None:
    """The first reference solution of ``solutions`` (JSON list of programs), if readable."""
    try:
        solutions = _json(raw, "solutions")
    except RowError:
        return None
    return solutions[0] if isinstance(solutions, list) and solutions and isinstance(solutions[0], str) else None


def _code_task(raw: Mapping, origin: Any) -> dict:
    tests = parse_io_tests(raw)
    task = {"prompt": _text(raw, "question"), "tests": tests, "verifiable": True,
            "difficulty": raw.get("difficulty"), "origin": origin}
    solution = _first_solution(raw)
    if solution:
        task["solution"] = solution
    return task


def map_taco(raw: Mapping) -> dict:
    """BAAI/TACO, split ``train``.

    Columns from the dataset card ("Dataset Structure"): ``question``, ``solutions`` (JSON list),
    ``starter_code``, ``input_output`` (JSON ``{"inputs", "outputs"[, "fn_name"]}``), ``difficulty``,
    ``raw_tags``, ``name``, ``source``, ``tags``, ``skill_types``, ``url``, ``Expected Auxiliary
    Space``, ``time_limit``, ``date``, ``picture_num``, ``memory_limit``, ``Expected Time Complexity``.
    """
    return _code_task(raw, raw.get("source"))


def map_apps(raw: Mapping) -> dict:
    """codeparrot/apps, split ``train``.

    Columns from the dataset card: ``problem_id``, ``question``, ``solutions`` (JSON list),
    ``input_output`` (JSON ``{"inputs", "outputs"[, "fn_name"]}``), ``difficulty``, ``url``,
    ``starter_code``.
    """
    return _code_task(raw, raw.get("url"))


def map_open_code_reasoning(raw: Mapping) -> dict:
    """nvidia/OpenCodeReasoning, config/split ``split_0``.

    Columns from the dataset card: ``id``, ``input`` (the question), ``output`` (R1's response),
    ``source``, ``license``, ``dataset`` (taco/apps/code_contests/open-r1/codeforces), ``split``,
    ``difficulty``, ``solution`` (the response's code); ``split_1`` adds ``index`` and has ``"-"`` as
    ``input`` ("an index to retrieve the input question from APPS/TACO"): such rows are rejected
    until joined. No tests: ``tests: []``, ``verifiable: False`` (SFT prompts only).
    """
    prompt = _text(raw, "input")
    if prompt.strip() == "-":
        raise RowError("input", f"placeholder '-': the question must first be joined from "
                                f"{raw.get('dataset')!r} row {raw.get('index')!r} (split_1)")
    origin = {k: raw.get(k) for k in ("dataset", "split", "index") if raw.get(k) is not None}
    task = {"prompt": prompt, "tests": [], "verifiable": False, "difficulty": raw.get("difficulty"), "origin": origin}
    if isinstance(raw.get("solution"), str) and raw["solution"].strip():
        task["solution"] = raw["solution"]
    return task


# --------------------------------------------------------------------------------------------
# Science
_OPTION = re.compile(r"^\s*(?:\(([A-J])\)|([A-J])\s*[).:])\s*(\S.*?)\s*$")


def parse_choices(text: str) -> list[str]:
    """The last run of lettered options (``A) x``, ``(A) x``, ``A. x``, ``A: x``), A first, in order."""
    runs, current = [], []
    for line in text.splitlines():
        match = _OPTION.match(line)
        letter = (match.group(1) or match.group(2)) if match else None
        if letter is not None and len(current) < len(LETTERS) and letter == LETTERS[len(current)]:
            current.append(match.group(3))
            continue
        if current:
            runs.append(current)
        current = [match.group(3)] if letter == "A" else []
    if current:
        runs.append(current)
    runs = [r for r in runs if len(r) >= 2]
    return runs[-1] if runs else []


def _science_task(prompt: str, choices: list[str], letter: str | None, free_answer: Callable[[], str],
                  answer_field: str) -> dict:
    if choices:
        if letter is None:
            raise RowError(answer_field, f"multiple choice with {len(choices)} options but no choice letter")
        if LETTERS.index(letter) >= len(choices):
            raise RowError(answer_field, f"answer {letter} but only {len(choices)} options")
        return {"prompt": prompt, "answer": letter, "choices": choices, "answer_format": "choice"}
    return {"prompt": prompt, "answer": free_answer(), "choices": [], "answer_format": "free_form"}


def map_s1k(raw: Mapping) -> dict:
    """simplescaling/s1K, split ``train``.

    Columns from the dataset card's ``dataset_info``: ``solution`` (the reference answer or
    solution), ``question``, ``cot_type``, ``source_type`` (e.g. ``Idavidrein/gpqa``), ``metadata``,
    ``cot``, ``thinking_trajectories``, ``attempt``. Multiple choice when the question lists options
    and ``solution`` names a letter; else free-form: the solution's ``\\boxed{}``, or the solution
    itself when it is short (a bare value).
    """
    prompt, solution = _text(raw, "question"), _text(raw, "solution")

    def free() -> str:
        boxed = last_boxed(solution)
        if boxed and boxed.strip():
            return boxed.strip()
        if len(solution.strip()) <= 120 and "\n" not in solution.strip():
            return clean_answer(solution)
        raise RowError("solution", "free-form solution without \\boxed{} answer and too long to be one")

    letter = choice_letter(solution.strip()) or extract_choice(solution)
    task = _science_task(prompt, parse_choices(prompt), letter, free, "solution")
    return {**task, "subject": raw.get("cot_type"), "origin": raw.get("source_type")}


def _nemotron_prompt(raw: Mapping) -> str:
    """The last user turn of ``input``: a list of messages (v1.1), or text in the Llama-3 chat
    template (v1) from which the user turn is cut."""
    value = _value(raw, "input")
    if isinstance(value, list):
        return _turn(_messages(raw, "input"), "user", "input", last=True)
    if not isinstance(value, str):
        raise RowError("input", f"expected messages or text, got {type(value).__name__}")
    header = "<|start_header_id|>user<|end_header_id|>"
    if header in value:
        value = value.rsplit(header, 1)[1].split("<|eot_id|>", 1)[0]
    if not value.strip():
        raise RowError("input", "empty")
    return value.strip()


def map_llama_nemotron_science(raw: Mapping) -> dict:
    """nvidia/Llama-Nemotron-Post-Training-Dataset, config ``SFT``, split ``science``.

    Columns from the dataset card and NeMo Curator's tutorial of it: ``input`` (chat messages),
    ``output`` (the response, ``<think>...</think>`` when ``reasoning`` is ``on``), ``category``,
    ``license``, ``reasoning``, ``generator``, ``used_in_training``, ``version``,
    ``system_prompt``. The answer is the letter the response commits to (``\\boxed{B}`` or "The answer
    is (B)") for lettered questions, else the response's ``\\boxed{}`` (a teacher answer).
    """
    prompt, output = _nemotron_prompt(raw), _text(raw, "output")
    task = _science_task(prompt, parse_choices(prompt), extract_choice(output),
                         lambda: boxed_answer(output, "output"), "output")
    return {**task, "reasoning": raw.get("reasoning"), "origin": raw.get("generator")}


# --------------------------------------------------------------------------------------------
# SWE
def _strip_prefix(path: str) -> str:
    path = path.strip()
    return path[2:] if path.startswith(("a/", "b/")) else path


def _patch_set(patch: str, name: str) -> unidiff.PatchSet:
    try:
        return unidiff.PatchSet(patch)
    except unidiff.UnidiffParseError as exc:
        raise RowError(name, f"not a unified diff ({exc})") from None


def patch_files(patch: str, name: str = "patch") -> list[str]:
    """Files a unified diff changes, most-changed first (ties keep diff order); deleted files by
    their source path."""
    counts: dict[str, int] = {}
    for patched in _patch_set(patch, name):
        target = patched.target_file or ""
        path = _strip_prefix(patched.source_file if target.strip() == DEV_NULL else target)
        changed = sum(1 for hunk in patched for line in hunk if line.is_added or line.is_removed)
        if changed:
            counts[path] = counts.get(path, 0) + changed
    if not counts:
        raise RowError(name, "the diff changes no file")
    order = list(counts)
    return sorted(order, key=lambda p: (-counts[p], order.index(p)))


def reverse_patch(patch: str) -> str:
    """The unified diff that undoes ``patch`` (sides, hunk ranges and +/- lines swapped; removed
    lines first in each change block, as ``git diff`` writes them)."""
    out: list[str] = []
    for patched in _patch_set(patch, "patch"):
        source, target = patched.source_file.strip(), patched.target_file.strip()
        out.append(f"--- {DEV_NULL if target == DEV_NULL else 'a/' + _strip_prefix(target)}\n")
        out.append(f"+++ {DEV_NULL if source == DEV_NULL else 'b/' + _strip_prefix(source)}\n")
        for hunk in patched:
            section = f" {hunk.section_header}" if hunk.section_header else ""
            out.append(f"@@ -{hunk.target_start},{hunk.target_length} "
                       f"+{hunk.source_start},{hunk.source_length} @@{section}\n")
            removed: list[str] = []
            added: list[str] = []
            last: list[str] = out
            for line in hunk:
                text = line.value if line.value.endswith("\n") else line.value + "\n"
                if line.line_type == LINE_TYPE_ADDED:
                    removed.append("-" + text)
                    last = removed
                elif line.line_type == LINE_TYPE_REMOVED:
                    added.append("+" + text)
                    last = added
                elif line.line_type == LINE_TYPE_NO_NEWLINE:
                    last.append("\\" + text)
                else:
                    out.extend(removed + added)
                    removed, added = [], []
                    out.append(" " + text)
                    last = out
            out.extend(removed + added)
    return "".join(out)


def _swe_task(raw: Mapping, gold_patch: str) -> dict:
    files = patch_files(gold_patch)
    task = {"prompt": _text(raw, "problem_statement"), "repo": {}, "repo_name": _text(raw, "repo"),
            "base_commit": _text(raw, "base_commit"), "instance_id": _text(raw, "instance_id"),
            "gold_patch": gold_patch, "file": files[0], "files": files,
            "key": raw["instance_id"]}
    if raw.get("FAIL_TO_PASS") is not None:
        task["fail_to_pass"] = _string_list(raw, "FAIL_TO_PASS")
    return task


def map_swe_bench(raw: Mapping) -> dict:
    """princeton-nlp/SWE-bench, split ``train`` (and SWE-bench_Verified ``test`` as a benchmark).

    Columns from the dataset card: ``repo``, ``instance_id``, ``base_commit``, ``patch`` (the gold
    patch, tests excluded), ``test_patch``, ``problem_statement``, ``hints_text``, ``created_at``,
    ``version``, ``FAIL_TO_PASS`` / ``PASS_TO_PASS`` (JSON text lists), ``environment_setup_commit``.
    """
    return _swe_task(raw, _text(raw, "patch"))


def map_swe_fixer(raw: Mapping) -> dict:
    """internlm/SWE-Fixer-Train-110K, split ``train`` (one ``swe-fixer-train-110k.jsonl``).

    SWE-bench's column names (``instance_id``, ``repo``, ``base_commit``, ``problem_statement``,
    ``patch``) per the SWE-Fixer paper (arXiv:2501.05040, issue→patch pairs built the SWE-bench
    way); the card has no schema and a Hub discussion notes the rows lack ``FAIL_TO_PASS`` /
    ``PASS_TO_PASS``, so tests are optional. Verify the names on the first real load.
    """
    return _swe_task(raw, _text(raw, "patch"))


def map_swe_smith(raw: Mapping) -> dict:
    """SWE-bench/SWE-smith, split ``train``.

    Columns from SWE-smith's ``swesmith/harness/gather.py``, which writes the instances:
    ``instance_id``, ``patch`` (the diff that *introduces* the bug), ``FAIL_TO_PASS`` /
    ``PASS_TO_PASS`` (lists), ``created_at``, ``image_name``, ``repo`` (the SWE-smith mirror),
    ``base_commit`` (the buggy branch's commit), plus ``problem_statement`` (generated issue text;
    empty for instances without one, which are rejected). The gold fix is the reversed ``patch``.
    """
    return {**_swe_task(raw, reverse_patch(_text(raw, "patch"))), "image_name": raw.get("image_name")}


# --------------------------------------------------------------------------------------------
# Tool calling
def map_xlam_function_calling(raw: Mapping) -> dict:
    """Salesforce/xlam-function-calling-60k, split ``train`` (gated: needs an HF token).

    Columns from the dataset card ("JSON Data Format for Query and Answers"): ``id``, ``query``,
    ``tools`` (JSON text: list of ``{name, description, parameters}``, each parameter
    ``{type, description[, default]}``), ``answers`` (JSON text: list of ``{name, arguments}``).
    Tools keep xLAM's shape; every expected call must name a declared tool.
    """
    prompt = _text(raw, "query")
    tools, calls = _json(raw, "tools"), _json(raw, "answers")
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise RowError("tools", "expected a list of tools with a string 'name'")
    if not isinstance(calls, list) or not calls:
        raise RowError("answers", "expected a non-empty list of calls")
    declared = {t["name"] for t in tools}
    expected = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("arguments"), dict):
            raise RowError("answers", f"call {i} is not {{name: str, arguments: object}}")
        if call["name"] not in declared:
            raise RowError("answers", f"call {i} names undeclared tool {call['name']!r}")
        expected.append({"name": call["name"], "arguments": call["arguments"]})
    return {"prompt": prompt, "tools": tools, "expected_calls": expected}


# --------------------------------------------------------------------------------------------
# Benchmarks (bench rows; decontamination reads their text fields)
def map_aime(raw: Mapping) -> dict:
    """HuggingFaceH4/aime_2024 and AI-MO/aimo-validation-aime (``train``): ``id``, ``problem``,
    ``solution``, ``answer`` (text or an integer), ``url`` (+ ``year``), per their dataset viewers."""
    value = _value(raw, "answer")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        answer = str(int(value)) if float(value).is_integer() else str(value)
    else:
        answer = clean_answer(_text(raw, "answer"))
    return {"prompt": _text(raw, "problem"), "answer": answer}


def map_math500(raw: Mapping) -> dict:
    """HuggingFaceH4/MATH-500 (``test``): ``problem``, ``solution``, ``answer``, ``subject``,
    ``level``, ``unique_id``."""
    return {"prompt": _text(raw, "problem"), "answer": clean_answer(_text(raw, "answer")),
            "subject": raw.get("subject"), "level": raw.get("level")}


def _stable_shuffle(items: list[str], key: str) -> list[str]:
    return sorted(items, key=lambda s: hashlib.sha1(f"{key}|{s}".encode()).hexdigest())


def map_gpqa(raw: Mapping) -> dict:
    """Idavidrein/gpqa, config ``gpqa_diamond``, split ``train`` (gated). Columns from the card:
    ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``, ``Explanation``, ``Record ID``, ...
    The four answers are shuffled by a stable hash of the question, so the letter is reproducible."""
    question = _text(raw, "Question").strip()
    correct = _text(raw, "Correct Answer").strip()
    wrong = [_text(raw, f"Incorrect Answer {i}").strip() for i in (1, 2, 3)]
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
            cases = _json(raw, name) if name == "public_test_cases" or raw.get(name) else []
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
            tests.append({"input": _stdio(case.get("input"), name, "input", i),
                          "output": _stdio(case.get("output"), name, "output", i)})
    if not tests:
        raise RowError("public_test_cases", "no tests")
    return {"prompt": _text(raw, "question_content"), "tests": tests, "verifiable": True,
            "difficulty": raw.get("difficulty"), "origin": raw.get("platform")}


def map_ifeval(raw: Mapping) -> dict:
    """google/IFEval (``train``): ``key``, ``prompt``, ``instruction_id_list``, ``kwargs``. On the
    Hub every kwargs object carries every argument name, unused ones null: nulls are dropped."""
    ids = _value(raw, "instruction_id_list")
    kwargs = _json(raw, "kwargs")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
        raise RowError("instruction_id_list", "expected a non-empty list of instruction ids")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise RowError("kwargs", f"expected {len(ids)} objects, one per instruction")
    return {"prompt": _text(raw, "prompt"), "instruction_id_list": list(ids),
            "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in kwargs]}


# --------------------------------------------------------------------------------------------
# Registries
@dataclass(frozen=True)
class SourceSpec:
    """Where a source lives on the Hub and how its rows map.

    ``builder`` + ``data_files``: read with a packaged builder (``json``/``parquet``) from ``hf://``
    files instead of the repository's own config (needed for repositories with loading scripts).
    ``rl_ok``: whether rows may go to the ``rl`` split (not without tests). ``text_fields``:
    benchmark columns that decontamination compares against.
    """

    name: str
    hf_path: str
    config: str | None
    split: str
    domain: str
    mapper: Callable[[Mapping], dict]
    id_column: str | None = None
    rl_ok: bool = True
    builder: str | None = None
    data_files: str | list[str] | None = None
    text_fields: tuple[str, ...] = ()


SOURCES: dict[str, SourceSpec] = {s.name: s for s in [
    SourceSpec("acemath_instruct", "nvidia/AceMath-Instruct-Training-Data", None, "math_sft", "math",
               map_acemath_instruct),
    SourceSpec("numina_math_cot", "AI-MO/NuminaMath-CoT", None, "train", "math", map_numina_math_cot),
    SourceSpec("open_math_reasoning", "nvidia/OpenMathReasoning", None, "cot", "math", map_open_math_reasoning),
    SourceSpec("taco", "BAAI/TACO", None, "train", "code", map_taco, id_column="url", builder="parquet",
               data_files="hf://datasets/BAAI/TACO/ALL/train-*.parquet"),
    SourceSpec("apps", "codeparrot/apps", None, "train", "code", map_apps, id_column="problem_id",
               builder="json", data_files="hf://datasets/codeparrot/apps/train.jsonl"),
    SourceSpec("open_code_reasoning", "nvidia/OpenCodeReasoning", "split_0", "split_0", "code",
               map_open_code_reasoning, id_column="id", rl_ok=False),
    SourceSpec("s1k", "simplescaling/s1K", None, "train", "science", map_s1k),
    SourceSpec("llama_nemotron_science", "nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "science",
               "science", map_llama_nemotron_science),
    SourceSpec("swe_bench_train", "princeton-nlp/SWE-bench", None, "train", "swe", map_swe_bench,
               id_column="instance_id"),
    SourceSpec("swe_smith", "SWE-bench/SWE-smith", None, "train", "swe", map_swe_smith, id_column="instance_id"),
    SourceSpec("swe_fixer", "internlm/SWE-Fixer-Train-110K", None, "train", "swe", map_swe_fixer,
               id_column="instance_id"),
    SourceSpec("xlam_function_calling", "Salesforce/xlam-function-calling-60k", None, "train", "tool_calling",
               map_xlam_function_calling, id_column="id"),
]}

_LCB_FILES = [f"hf://datasets/livecodebench/code_generation_lite/{f}.jsonl"
              for f in ("test", "test2", "test3", "test4", "test5", "test6")]

BENCHMARKS: dict[str, SourceSpec] = {s.name: s for s in [
    SourceSpec("aime24", "HuggingFaceH4/aime_2024", None, "train", "math", map_aime, id_column="id",
               text_fields=("problem",)),
    SourceSpec("aimo_validation_aime", "AI-MO/aimo-validation-aime", None, "train", "math", map_aime,
               id_column="id", text_fields=("problem",)),
    SourceSpec("math500", "HuggingFaceH4/MATH-500", None, "test", "math", map_math500, id_column="unique_id",
               text_fields=("problem",)),
    SourceSpec("gpqa_diamond", "Idavidrein/gpqa", "gpqa_diamond", "train", "science", map_gpqa,
               id_column="Record ID", text_fields=("Question",)),
    SourceSpec("livecodebench", "livecodebench/code_generation_lite", None, "train", "code", map_livecodebench,
               id_column="question_id", builder="json", data_files=_LCB_FILES, text_fields=("question_content",)),
    SourceSpec("ifeval", "google/IFEval", None, "train", "instruction_following", map_ifeval, id_column="key",
               text_fields=("prompt",)),
    SourceSpec("swe_bench_verified", "princeton-nlp/SWE-bench_Verified", None, "test", "swe", map_swe_bench,
               id_column="instance_id", text_fields=("problem_statement",)),
]}


def get_spec(name: str) -> SourceSpec:
    """The source or benchmark named ``name``."""
    spec = SOURCES.get(name) or BENCHMARKS.get(name)
    if spec is None:
        raise KeyError(f"unknown source {name!r}; sources: {sorted(SOURCES)}; benchmarks: {sorted(BENCHMARKS)}")
    return spec


# --------------------------------------------------------------------------------------------
# Mapping many rows
def stable_hash(text: str) -> float:
    """A number in [0, 1) fixed by ``text``."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 2**32


def _raw_id(raw: Mapping, spec: SourceSpec) -> Any:
    value = raw.get(spec.id_column) if spec.id_column and isinstance(raw, Mapping) else None
    return value if isinstance(value, (str, int, float)) else None


def _check_swe(task: dict) -> str | None:
    """Fields of real SWE rows that ``task.swe`` does not name."""
    for name in ("repo_name", "base_commit"):
        if not isinstance(task.get(name), str) or not task[name].strip():
            return f"missing field '{name}'"
    if not isinstance(task.get("files"), list) or not task["files"] or task["file"] not in task["files"]:
        return "field 'files' must be a non-empty list holding 'file'"
    return None


def _reject(spec: SourceSpec, index: int, raw: Mapping, field: str | None, reason: str,
            kind: str = "invalid") -> dict:
    """A quarantine record: which source, row and field, and why (the reason repeats source and row)."""
    raw_id = _raw_id(raw, spec)
    where = f"{spec.name} row {index}" + (f" (id {raw_id!r})" if raw_id is not None else "")
    return {"source": spec.name, "row": index, "field": field, "reason": f"{where}: {reason}",
            "raw_id": raw_id, "kind": kind}


def map_rows(source: str, rows: Iterable[Mapping], *, start: int = 0, task_split: str | None = None,
             rl_share: float = 0.0) -> tuple[list[dict], list[dict]]:
    """Tasks and rejects of ``rows`` from ``source`` (a name of :data:`SOURCES` or :data:`BENCHMARKS`).

    ``row`` in a reject is the 0-based position in ``rows`` plus ``start``. ``task_split`` forces
    every task into one split; otherwise benchmarks give ``bench`` and training sources ``rl`` for a
    stable ``rl_share`` of task keys (never for sources without tests) and ``sft`` for the rest.
    """
    spec = get_spec(source)
    if not 0.0 <= rl_share <= 1.0:
        raise ValueError(f"rl_share must be in [0, 1], got {rl_share}")
    tasks, rejects, seen = [], [], {}
    for index, raw in enumerate(rows, start=start):
        if not isinstance(raw, Mapping):
            rejects.append(_reject(spec, index, {}, None, f"expected a row object, got {type(raw).__name__}"))
            continue
        try:
            fields = spec.mapper(raw)
        except RowError as error:
            rejects.append(_reject(spec, index, raw, error.field, str(error)))
            continue
        key = str(fields.pop("key", None) or fields["prompt"])
        task_id = f"{source}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
        if task_id in seen:
            rejects.append(_reject(spec, index, raw, None, f"duplicate of row {seen[task_id]} (task id {task_id})",
                                   kind="duplicate"))
            continue
        if task_split is not None:
            split = task_split
        elif spec.text_fields:
            split = "bench"
        else:
            split = "rl" if spec.rl_ok and stable_hash(f"{spec.domain}|{key}") < rl_share else "sft"
        task = {"id": task_id, "domain": spec.domain, "split": split, "source": source, **fields}
        problem = validate_row(f"task.{spec.domain}", task) or (_check_swe(task) if spec.domain == "swe" else None)
        if problem:
            rejects.append(_reject(spec, index, raw, None, f"mapped row breaks task.{spec.domain}: {problem}"))
            continue
        seen[task_id] = index
        tasks.append(task)
    return tasks, rejects


def benchmark_texts(name: str, rows: Iterable[Mapping]) -> list[str]:
    """The decontamination texts of a benchmark's rows (its ``text_fields``, non-empty strings)."""
    spec = BENCHMARKS[name]
    return [raw[f] for raw in rows for f in spec.text_fields
            if isinstance(raw.get(f), str) and raw[f].strip()]


# --------------------------------------------------------------------------------------------
# Loading from the Hub
def _load_dataset():
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - exercised only without the gpu extra
        raise ImportError("loading HF sources needs the 'datasets' package: pip install -e '.[gpu]' "
                          "(or pip install datasets==5.2.0)") from exc
    return datasets.load_dataset


def iter_raw_rows(name: str, split: str | None = None, limit: int | None = None, *, builder: str | None = None,
                  data_files: Any = None, streaming: bool | None = None, **load_kwargs: Any) -> Iterable[Mapping]:
    """Raw rows of a source or benchmark as ``datasets.load_dataset`` yields them (at most ``limit``).

    ``builder`` / ``data_files`` override the registry (e.g. ``"json"`` and a local file); with a
    ``limit``, the split is streamed unless ``streaming=False``, so a 50 GB source is not downloaded
    to read its first rows.
    """
    spec = get_spec(name)
    load_dataset = _load_dataset()
    builder, data_files = builder or spec.builder, data_files if data_files is not None else spec.data_files
    if streaming is None:
        streaming = limit is not None
    if builder is not None:
        if data_files is None:
            raise ValueError(f"source {name!r}: builder {builder!r} needs data_files")
        files = data_files if isinstance(data_files, Mapping) else {split or "train": data_files}
        dataset = load_dataset(builder, data_files=files, split=split or next(iter(files)),
                               streaming=streaming, **load_kwargs)
    else:
        dataset = load_dataset(spec.hf_path, spec.config, split=split or spec.split, streaming=streaming,
                               **load_kwargs)
    return islice(dataset, limit) if limit is not None else dataset


def load_source(name: str, split: str | None = None, limit: int | None = None, *, task_split: str | None = None,
                rl_share: float = 0.0, **load_kwargs: Any) -> tuple[list[dict], list[dict]]:
    """``(tasks, rejects)`` of a source or benchmark loaded from the Hub (``split``: the HF split,
    default the registry's; ``limit``: raw rows read). See :func:`iter_raw_rows` and :func:`map_rows`."""
    rows = iter_raw_rows(name, split, limit, **load_kwargs)
    tasks, rejects = map_rows(name, rows, task_split=task_split, rl_share=rl_share)
    logger.info("source %s: %d tasks, %d rejects", name, len(tasks), len(rejects))
    return tasks, rejects


def load_benchmark_texts(name: str, split: str | None = None, limit: int | None = None,
                         **load_kwargs: Any) -> list[str]:
    """Decontamination texts of a benchmark loaded from the Hub."""
    return benchmark_texts(name, iter_raw_rows(name, split, limit, **load_kwargs))
