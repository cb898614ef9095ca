"""Nodes of the SFT pipeline: the base model, then one fine-tuning node per stage."""

from __future__ import annotations

import logging

from nemotron_cascade import stages
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.pipelines.sft.config import BaseModelConfig, SFTStageConfig
from nemotron_cascade.training import placement

log = logging.getLogger(__name__)


def build_base_model(samples: list[dict], config: BaseModelConfig) -> Checkpoint:
    """The starting checkpoint: a tiny model with a tokenizer trained on the corpus, or a pretrained one.

    A tiny model can first be *pretrained* (``pretrain.max_steps > 0``): plain next-token loss on
    every token of the corpus text, prompts included — what a real base model has before SFT —
    saving and resuming its state like SFT (:mod:`nemotron_cascade.stages`).
    """
    from nemotron_cascade import chat, models

    if config.source == "pretrained":
        model = models.load_model(config.name_or_path, dtype=config.dtype,
                                  attn_implementation=config.attn_implementation, rope_scaling=config.rope_scaling)
        tokenizer, run = models.load_tokenizer(config.name_or_path), None
    else:
        texts = [chat.render(s["messages"], s.get("tools")) for s in samples]
        tokenizer = models.train_tokenizer(texts, config.vocab_size)
        model = models.build_tiny_model(tokenizer, config.tiny_config)
        run = pretrain(model, tokenizer, texts, config)
    return Checkpoint(model=model, tokenizer=tokenizer, lineage=stages.lineage(
        "base", None, run, source=config.source, name_or_path=config.name_or_path,
        parameters=models.count_parameters(model)))


def pretrain(model, tokenizer, texts: list[str], config: BaseModelConfig) -> stages.StageRun | None:
    """Next-token pretraining of the tiny ``model`` on ``texts`` when the config asks for it; its run."""
    from nemotron_cascade import tracking
    from nemotron_cascade.lineage import content_digest
    from nemotron_cascade.training import packing

    pre = config.pretraining
    if pre is None:
        return None
    blocks, stats = packing.prepare_lm_blocks(texts, tokenizer, pre.block_size)
    tracking.log_metrics(stats, prefix="pretrain_data/")
    run = stages.start("base", pre.launch, "pretrain", content_digest(texts), dict(config.tiny),
                       dict(pre.train_params))
    with placement.scope(config.device):
        stages.train_sft(run, model, tokenizer, blocks, pre.train, prefix="pretrain/")
    return run


def train_sft_stage(policy: Checkpoint, blend: list[dict], config: SFTStageConfig,
                    stage: str) -> tuple[Checkpoint, list[dict]]:
    """Fine-tune ``policy`` on the stage's blend; the new checkpoint and its step metrics.

    Local or launched (``train.launch``), fingerprinted and resumable: :mod:`nemotron_cascade.stages`.
    """
    from nemotron_cascade import tracking
    from nemotron_cascade.training import packing

    blocks, stats = packing.prepare_blocks(blend, policy.tokenizer, config.block_size, config.train.seed)
    log.info("%s: %s", stage, stats)
    tracking.log_metrics(stats, prefix="data/")
    run = stage_run(policy, blend, config, stage)
    with placement.scope(config.device):  # the loop places the model there
        history = stages.train_sft(run, policy.model, policy.tokenizer, blocks, config.train)
    lineage = stages.lineage(stage, policy, run, data={"samples": len(blend), **stats})
    return Checkpoint(model=policy.model, tokenizer=policy.tokenizer, lineage=lineage), history


def stage_run(policy: Checkpoint, blend: list[dict], config: SFTStageConfig, stage: str) -> stages.StageRun:
    """The SFT stage's run: keyed by the parent's version, the blend and the ``train`` block as written."""
    train = {k: v for k, v in config.train_params.items() if k != "block_size"}
    return stages.start(stage, config.launch, policy.lineage.get("version"), len(blend),
                        blend[0]["id"] if blend else None, {**train, "block": config.block_size})
