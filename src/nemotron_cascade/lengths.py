"""Token lengths checked against the model's context before any node runs.

A stage that asks for more tokens than the model attends over fails hours into a run (or, with
RoPE, silently degrades past the trained positions). :class:`LengthCheckHook` reads the run's
parameters and the base model's context — ``max_position_embeddings`` of the tiny config or of the
pretrained checkpoint's ``config.json``, times the YaRN factor of ``base_model.rope_scaling``
(:func:`nemotron_cascade.models.context_length`) — and refuses a run whose lengths exceed it,
naming the key:

* ``sft.<stage>.train.block_size`` (packed tokens per block);
* ``<rl stage>.train.length_schedule`` new tokens, plus the prompt budget of ``context_schedule``;
* ``<rl stage>.train.vllm.max_model_len`` (at least the stage's longest sequence, at most the context);
* ``evaluation.max_new_tokens`` (a prompt needs at least one token besides).

Only the parameters the run's pipeline reads are checked, so ``kedro run --pipelines=data_curation``
never opens a model config.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)

YARN_HINT = ("set base_model.rope_scaling to extend it with YaRN as Qwen3's documentation does, e.g. "
             "{rope_type: yarn, factor: 2.0, original_max_position_embeddings: 32768}")


class ContextLengthError(ValueError):
    """A length in the parameters exceeds the model's context; the message names the key."""


def model_context(base_model: Mapping[str, Any]) -> tuple[int, str] | None:
    """``(tokens, what)`` the base model attends over, or None when its config cannot be read."""
    from nemotron_cascade import models

    if base_model.get("source") != "pretrained":
        tiny = dict(base_model.get("tiny") or {})
        limit = int(tiny.get("max_position_embeddings", models.TinyModelConfig.max_position_embeddings))
        return limit, "the tiny model (base_model.tiny.max_position_embeddings)"
    name = base_model["name_or_path"]
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        log.warning("lengths not checked: the config of %s cannot be read here (%s)", name, exc)
        return None
    config = models.with_rope_scaling(config, base_model.get("rope_scaling"))
    scaled = " with base_model.rope_scaling" if base_model.get("rope_scaling") else ""
    return models.context_length(config), f"{name} (max_position_embeddings in its config.json{scaled})"


def _schedule_max(schedule) -> int:
    return max((int(tokens) for _, tokens in schedule or ()), default=0)


def stage_lengths(stage: str, block: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(key, tokens)`` of one parameters block that must fit the context."""
    train = dict(block.get("train") or {})
    if "block_size" in train:
        where = f"{stage}.block_size" if stage.endswith(".pretrain") else f"{stage}.train.block_size"
        return [(where, int(train["block_size"]))]
    out = []
    if "length_schedule" in train:
        response = _schedule_max(train["length_schedule"])
        prompt = _schedule_max(train.get("context_schedule"))
        key = f"{stage}.train.length_schedule" + (" + context_schedule" if prompt else "")
        out.append((key, response + prompt))
    return out


def _blocks(top: str, block: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The blocks with a ``train`` under a top-level key: the stage itself (an RL stage), its
    sub-stages (``sft.stage1``), or the tiny model's ``base_model.pretrain`` (a flat train block)."""
    if "train" in block:
        return {top: block}
    found = {f"{top}.{k}": v for k, v in block.items() if isinstance(v, Mapping) and "train" in v}
    if top == "base_model" and isinstance(block.get("pretrain"), Mapping) and block.get("source") != "pretrained":
        found[f"{top}.pretrain"] = {"train": block["pretrain"]}
    return found


def problems(params: Mapping[str, Any], keys: set[str], context: int, what: str) -> list[str]:
    """Why the parameters under ``keys`` (top-level names the run reads) do not fit ``context``."""
    found = []
    for top in sorted(keys):
        block = params.get(top)
        if not isinstance(block, Mapping):
            continue
        for stage, sub in _blocks(top, block).items():
            lengths = stage_lengths(stage, sub)
            found += [f"params {key}: {tokens} tokens exceed the {context}-token context of {what}"
                      for key, tokens in lengths if tokens > context]
            vllm = dict((sub.get("train") or {}).get("vllm") or {})
            longest = sum(t for _, t in lengths)
            if vllm.get("max_model_len") is not None and not longest <= int(vllm["max_model_len"]) <= context:
                found.append(f"params {stage}.train.vllm.max_model_len: {vllm['max_model_len']} must hold the "
                             f"stage's {longest} tokens and not exceed the {context}-token context of {what}")
    evaluation = params.get("evaluation") if "evaluation" in keys else None
    if isinstance(evaluation, Mapping) and int(evaluation.get("max_new_tokens", 0)) >= context:
        found.append(f"params evaluation.max_new_tokens: {evaluation['max_new_tokens']} new tokens leave no room "
                     f"for a prompt in the {context}-token context of {what}")
    engine_len = (evaluation.get("vllm") or {}).get("max_model_len") if isinstance(evaluation, Mapping) else None
    if engine_len is not None and not int(evaluation.get("max_new_tokens", 0)) < int(engine_len) <= context:
        found.append(f"params evaluation.vllm.max_model_len: {engine_len} must exceed evaluation.max_new_tokens "
                     f"({evaluation.get('max_new_tokens')}) and not exceed the {context}-token context of {what}")
    return found


def check_lengths(params: Mapping[str, Any], keys: set[str]) -> None:
    """Raise :class:`ContextLengthError` listing every length under ``keys`` that exceeds the context."""
    base_model = params.get("base_model")
    if not isinstance(base_model, Mapping):
        return
    found = model_context(base_model)
    if found is None:
        return
    context, what = found
    bad = problems(params, keys, context, what)
    if bad:
        raise ContextLengthError("lengths exceed the model's context:\n  - " + "\n  - ".join(bad)
                                 + f"\nShorten them, or {YARN_HINT}.")


def as_written(value: Any) -> Any:
    """Parameters as the YAML wrote them: Kedro hands typed blocks over as their config objects
    (``RLStageConfig``, ``SFTStageConfig``...); a stage's ``train`` comes back as written."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {f.name: as_written(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "train_params"):
            plain["train"] = as_written(dict(value.train_params))
        return plain
    if isinstance(value, Mapping):
        return {k: as_written(v) for k, v in value.items()}
    return value


class LengthCheckHook:
    """Refuses a run whose token lengths exceed the base model's context, before any node runs."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        keys = {name.split(":", 1)[1].split(".", 1)[0] for name in pipeline.inputs() if name.startswith("params:")}
        if keys:
            check_lengths(as_written(catalog.load("parameters")), keys)
