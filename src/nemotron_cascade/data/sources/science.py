"""Science training sources: s1K and Llama-Nemotron's science SFT split; multiple choice when the
question lists lettered options, free-form otherwise."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from nemotron_cascade import chat
from nemotron_cascade.data.sources.fields import (
    LETTERS,
    RowError,
    boxed_answer,
    clean_answer,
    messages_of,
    references,
    text_of,
    value_of,
    with_references,
)
from nemotron_cascade.rewards.answers import last_boxed
from nemotron_cascade.rewards.science import choice_letter, extract_choice

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
    # science_reward grades a choice letter only: a free-form answer is for SFT, never checked by it
    return {"prompt": prompt, "answer": free_answer(), "choices": [], "answer_format": "free_form",
            "verifiable": False}


def map_s1k(raw: Mapping) -> dict:
    """simplescaling/s1K, split ``train``.

    Columns from the dataset card's ``dataset_info``: ``solution`` (the reference answer or
    solution), ``question``, ``cot_type``, ``source_type`` (e.g. ``Idavidrein/gpqa``), ``metadata``,
    ``cot``, ``thinking_trajectories``, ``attempt``. Multiple choice when the question lists options
    and ``solution`` names a letter; else free-form: the solution's ``\\boxed{}``, or the solution
    itself when it is short (a bare value). ``reference_responses``: the ``thinking_trajectories``
    (joined) as the trace and ``attempt`` as the answer (``thinking``; ``plain`` without a trace).
    """
    prompt, solution = text_of(raw, "question"), text_of(raw, "solution")

    def free() -> str:
        boxed = last_boxed(solution)
        if boxed and boxed.strip():
            return boxed.strip()
        if len(solution.strip()) <= 120 and "\n" not in solution.strip():
            return clean_answer(solution)
        raise RowError("solution", "free-form solution without \\boxed{} answer and too long to be one")

    letter = choice_letter(solution.strip()) or extract_choice(solution)
    task = _science_task(prompt, parse_choices(prompt), letter, free, "solution")
    return with_references({**task, "subject": raw.get("cot_type"), "origin": raw.get("source_type")},
                           _s1k_references(raw))


def _s1k_references(raw: Mapping) -> dict[str, str]:
    """s1K's own response: Gemini's ``thinking_trajectories`` (a list of strings) and its ``attempt``."""
    attempt = raw.get("attempt")
    if not isinstance(attempt, str) or not attempt.strip():
        return {}
    trajectories = raw.get("thinking_trajectories")
    parts = [t.strip() for t in trajectories if isinstance(t, str) and t.strip()] \
        if isinstance(trajectories, list) else []
    if not parts:
        return {"plain": attempt.strip()}
    return {"thinking": chat.thinking_response("\n\n".join(parts), attempt.strip())}


_HEADER, _HEADER_END, _EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"


def nemotron_turns(raw: Mapping) -> list[dict]:
    """The conversation of Llama-Nemotron's ``input``: a list of messages (v1.1), or text in the
    Llama-3 chat template (v1), cut at its headers into ``{role, content}`` turns (a text without
    headers is one user turn). Empty turns are dropped."""
    value = value_of(raw, "input")
    if isinstance(value, list):
        turns = messages_of(raw, "input")
    elif isinstance(value, str):
        if _HEADER in value:
            turns = []
            for segment in value.split(_HEADER)[1:]:
                role, _, content = segment.partition(_HEADER_END)
                turns.append({"role": role.strip(), "content": content.split(_EOT, 1)[0]})
        else:
            turns = [{"role": "user", "content": value}]
    else:
        raise RowError("input", f"expected messages or text, got {type(value).__name__}")
    return [{"role": t.get("role"), "content": t["content"].strip()} for t in turns if t["content"].strip()]


def nemotron_prompt(raw: Mapping) -> str:
    """The last user turn of ``input`` (see :func:`nemotron_turns`)."""
    users = [t["content"] for t in nemotron_turns(raw) if t["role"] == "user"]
    if not users:
        raise RowError("input", "no non-empty 'user' message")
    return users[-1]


def nemotron_output(raw: Mapping) -> str:
    """``output`` without the ``<|eot_id|>`` that v1 rows (Llama-3 template) end with."""
    output = text_of(raw, "output").strip()
    output = output[:-len(_EOT)].rstrip() if output.endswith(_EOT) else output
    if not output:
        raise RowError("output", "empty")
    return output


def map_llama_nemotron_science(raw: Mapping) -> dict:
    """nvidia/Llama-Nemotron-Post-Training-Dataset, config ``SFT``, split ``science``.

    Columns from the dataset card and NeMo Curator's tutorial of it: ``input`` (chat messages),
    ``output`` (the response, ``<think>...</think>`` when ``reasoning`` is ``on``), ``category``,
    ``license``, ``reasoning``, ``generator``, ``used_in_training``, ``version``,
    ``system_prompt``. The answer is the letter the response commits to (``\\boxed{B}`` or "The answer
    is (B)") for lettered questions, else the response's ``\\boxed{}`` (a teacher answer).
    ``reference_responses``: ``output``, ``thinking`` when it holds a ``<think>`` trace (``reasoning``
    on), else ``plain``.
    """
    prompt, output = nemotron_prompt(raw), nemotron_output(raw)
    task = _science_task(prompt, parse_choices(prompt), extract_choice(output),
                         lambda: boxed_answer(output, "output"), "output")
    return with_references({**task, "reasoning": raw.get("reasoning"), "origin": raw.get("generator")},
                           references(output))
