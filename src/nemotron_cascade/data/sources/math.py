"""Math training sources: AceMath-Instruct, NuminaMath-CoT, OpenMathReasoning."""

from __future__ import annotations

from collections.abc import Mapping

from nemotron_cascade.data.sources.fields import (
    boxed_answer,
    clean_answer,
    messages_of,
    references,
    text_of,
    turn_of,
    with_references,
)


def map_acemath_instruct(raw: Mapping) -> dict:
    """nvidia/AceMath-Instruct-Training-Data, split ``math_sft``.

    Columns from the dataset card's ``dataset_info``: ``messages`` (list of ``{role, content}``: the
    user prompt and the Qwen2.5-Math-72B answer) and ``answer`` (the final answer; may be empty, then
    the answer's last ``\\boxed{}`` is used). ``reference_responses``: the assistant turn, ``plain``
    (Qwen2.5-Math-Instruct writes no reasoning trace).
    """
    messages = messages_of(raw, "messages")
    prompt = turn_of(messages, "user", "messages")
    reply = turn_of(messages, "assistant", "messages", last=True)
    given = raw.get("answer")
    answer = clean_answer(given) if isinstance(given, str) and given.strip() else boxed_answer(reply, "messages")
    return with_references({"prompt": prompt, "answer": answer}, references(reply))


def map_numina_math_cot(raw: Mapping) -> dict:
    """AI-MO/NuminaMath-CoT, split ``train``.

    Columns from the dataset card: ``source`` (e.g. ``cn_k12``, ``aops_forum``), ``problem``,
    ``solution`` (CoT ending in ``\\boxed{}``), ``messages``. The answer is the solution's last box;
    a solution without one (proofs) is rejected. ``reference_responses``: ``solution``, ``plain``.
    """
    solution = text_of(raw, "solution")
    task = {"prompt": text_of(raw, "problem"), "answer": boxed_answer(solution, "solution"),
            "origin": raw.get("source")}
    return with_references(task, references(solution))


def map_open_math_reasoning(raw: Mapping) -> dict:
    """nvidia/OpenMathReasoning, split ``cot`` (also ``tir``, ``genselect``).

    Columns from the dataset card's ``dataset_info``: ``expected_answer``, ``problem_type``,
    ``problem_source``, ``generation_model``, ``problem``, ``generated_solution``,
    ``inference_mode``. Several rows share a problem (one per generated solution): they map to the
    same task id and the repeats are reported as duplicates. ``generated_solution`` is the
    generation model's (DeepSeek-R1 / QwQ-32B) reasoning in ``<think>...</think>`` then its
    solution: ``reference_responses`` holds it as ``thinking`` (``plain`` if it has no trace).
    """
    prompt = text_of(raw, "problem")
    given = raw.get("expected_answer")
    if isinstance(given, str) and given.strip():
        answer = clean_answer(given)
    else:
        answer = boxed_answer(text_of(raw, "generated_solution"), "expected_answer")
    task = {"prompt": prompt, "answer": answer, "problem_type": raw.get("problem_type"),
            "origin": raw.get("problem_source")}
    return with_references(task, references(raw.get("generated_solution")))
