"""Instruction-following training source: AllenAI's IF-RLVR prompts (``allenai/IF_multi_constraints_upto5``),
verifiable constraints on prompts that are not IFEval's (IFEval stays the benchmark).

Its constraints are drawn from IFEval's 25 and IFBench-Train's 29; the project's verifier
(``rewards.ifeval``) checks IFEval's 25, so a row keeps only if every instruction id is one of them
and its kwargs pass the verifier's own validation; otherwise it is rejected with the id (and the
problem) in the reason, never trained on with a reward that cannot score it.

Decontamination: the constraints are written into the prompt in IFEval's own template sentences
("Your entire response should be in English, and in all lowercase letters. No capital letters are
allowed."), which IFEval's prompts share: 14 of the 25 templates, appended to a neutral request,
share a 9-word sequence with IFEval's 541 prompts. So a row also carries ``task_text``, the prompt
without the ``constraint`` text the source appended (the prompt itself when that text is not found
in it), for curation to compare (``curation.item_fields.instruction_following``): a copy of an
IFEval request is still caught, a shared template sentence is not a leak.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from nemotron_cascade.data.sources.fields import RowError, messages_of, turn_of, value_of
from nemotron_cascade.rewards.ifeval.registry import INSTRUCTIONS, validate_kwargs


def _ground_truth(raw: Mapping) -> list[dict]:
    """``ground_truth``: the text of a one-element list of ``{instruction_id, kwargs}`` (Python
    literal, as open-instruct writes it: ``[{'instruction_id': [...], 'kwargs': [None, {...}]}]``;
    JSON is read too). Several elements are concatenated."""
    value = value_of(raw, "ground_truth")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as exc:
                raise RowError("ground_truth", f"neither JSON nor a Python literal ({exc})") from None
    specs = [value] if isinstance(value, Mapping) else value
    if not isinstance(specs, list) or not specs:
        raise RowError("ground_truth", f"expected a list of {{instruction_id, kwargs}}, got {type(value).__name__}")
    return [json.loads(s) if isinstance(s, str) else s for s in specs]


def _constraints(raw: Mapping) -> tuple[list[str], list[dict[str, Any]]]:
    """Instruction ids and their kwargs (``None`` → ``{}``; null-valued keys dropped)."""
    ids: list[str] = []
    kwargs: list[dict[str, Any]] = []
    for spec in _ground_truth(raw):
        if not isinstance(spec, Mapping):
            raise RowError("ground_truth", f"expected {{instruction_id, kwargs}} objects, got {type(spec).__name__}")
        got_ids, got_kwargs = spec.get("instruction_id"), spec.get("kwargs")
        if not isinstance(got_ids, list) or not got_ids or not all(isinstance(i, str) for i in got_ids):
            raise RowError("ground_truth", "'instruction_id' must be a non-empty list of ids")
        if not isinstance(got_kwargs, list) or len(got_kwargs) != len(got_ids):
            raise RowError("ground_truth", f"'kwargs' must be a list of {len(got_ids)} entries, one per instruction")
        for kw in got_kwargs:
            if kw is not None and not isinstance(kw, Mapping):
                raise RowError("ground_truth", f"a kwargs entry is a {type(kw).__name__}, not an object or null")
            kwargs.append({k: v for k, v in (kw or {}).items() if v is not None})
        ids += got_ids
    return ids, kwargs


def _check_supported(ids: list[str], kwargs: list[dict[str, Any]]) -> None:
    """Every id is one the project's verifier checks, with kwargs it accepts."""
    for instruction_id, kw in zip(ids, kwargs):
        if instruction_id not in INSTRUCTIONS:
            raise RowError("ground_truth", f"instruction id {instruction_id!r} is not supported by the project's "
                                           "IFEval verifier (rewards/ifeval checks IFEval's 25 ids)")
        try:
            validate_kwargs(instruction_id, kw)
        except (TypeError, ValueError) as error:
            raise RowError("ground_truth", f"kwargs of {instruction_id!r} do not fit the verifier: {error}") from None


def task_text(prompt: str, constraint: object) -> str:
    """``prompt`` without the ``constraint`` text written into it (whitespace collapsed), or the
    prompt itself when the constraint text is absent from it or is all there is."""
    if not isinstance(constraint, str) or not constraint.strip() or constraint.strip() not in prompt:
        return prompt
    rest = " ".join(prompt.replace(constraint.strip(), " ", 1).split())
    return rest or prompt


def map_if_multi_constraints(raw: Mapping) -> dict:
    """allenai/IF_multi_constraints_upto5, split ``train`` (``data/train-*.parquet``).

    Columns from the dataset card's ``dataset_info``: ``key`` (the source prompt's id, e.g.
    ``ai2-adapt-dev/flan_v2_converted_16928``), ``messages`` (the user prompt with its constraints
    written in), ``ground_truth`` (text: ``[{'instruction_id': [...], 'kwargs': [...]}]``, read by
    open-instruct's ``IFEvalVerifier``), ``dataset`` (``ifeval``), ``constraint_type``, ``constraint``
    (the constraints' text). Up to 5 constraints per prompt, from IFEval (25) and IFBench-Train (29):
    rows with an id or kwargs the project's verifier does not check are rejected. No response.
    ``task_text``: the prompt without ``constraint`` (see the module docstring).
    """
    prompt = turn_of(messages_of(raw, "messages"), "user", "messages", last=True)
    ids, kwargs = _constraints(raw)
    _check_supported(ids, kwargs)
    origin = raw.get("key") if isinstance(raw.get("key"), str) else None
    return {"prompt": prompt, "task_text": task_text(prompt, raw.get("constraint")), "instruction_id_list": ids,
            "kwargs": kwargs, "origin": origin}
