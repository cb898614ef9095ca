"""Nodes of the SFT pipeline."""

from __future__ import annotations

import logging

from nemotron_cascade import chat, models, tracking
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.lineage import content_digest
from nemotron_cascade.training import launch as launch_lib
from nemotron_cascade.training import packing, resume
from nemotron_cascade.training.sft import config_from_params, train_sft

log = logging.getLogger(__name__)


def build_base_model(samples: list[dict], source: str, name_or_path: str | None, vocab_size: int,
                     tiny: dict, pretrain: dict | None = None, resume_dir: str | None = None,
                     dtype: str = "float32", attn_implementation: str = "sdpa") -> Checkpoint:
    """The starting checkpoint: a tiny model with a tokenizer trained on the corpus, or a pretrained one.

    A tiny model can first be *pretrained* (``pretrain.max_steps > 0``): plain next-token loss on
    every token of the corpus text, prompts included — what a real base model has before SFT.
    Pretraining saves its state to ``resume_dir`` every ``checkpoint_every`` steps, like SFT (a
    launched job too: DeepSpeed's sharded checkpoints).
    """
    if source == "pretrained":
        if not name_or_path:
            raise ValueError("params base_model.name_or_path is required when base_model.source is 'pretrained'")
        model = models.load_model(name_or_path, dtype=dtype, attn_implementation=attn_implementation)
        tokenizer = models.load_tokenizer(name_or_path)
    elif source == "tiny":
        texts = [chat.render(s["messages"], s.get("tools")) for s in samples]
        tokenizer = models.train_tokenizer(texts, vocab_size)
        model = models.build_tiny_model(tokenizer, models.TinyModelConfig(**tiny))
        if pretrain and int(pretrain.get("max_steps", 0)) > 0:
            cfg = dict(pretrain)
            launch = launch_lib.config_from_params(cfg.pop("launch", None))
            blocks, stats = packing.prepare_lm_blocks(texts, tokenizer, int(cfg.pop("block_size")))
            tracking.log_metrics(stats, prefix="pretrain_data/")
            on_metrics = lambda m, s: tracking.log_metrics(m, s, "pretrain/")  # noqa: E731
            fingerprint = resume.fingerprint("pretrain", content_digest(texts), tiny,
                                             {k: v for k, v in pretrain.items() if k != "launch"})
            if launch.distributed:
                launch_lib.train_sft_distributed(model, tokenizer, blocks, config_from_params(cfg), launch, on_metrics,
                                                 resume_dir=resume_dir, fingerprint=fingerprint, keep_final_state=True)
            else:
                train_sft(model, blocks, config_from_params(cfg), on_metrics=on_metrics,
                          resume_dir=resume_dir, keep_final_state=True, fingerprint=fingerprint)
    else:
        raise ValueError(f"params base_model.source must be 'tiny' or 'pretrained', got {source!r}")
    lineage = {"stage": "base", "source": source, "name_or_path": name_or_path,
               "parameters": models.count_parameters(model), "mlflow_run_id": tracking.current_run_id()}
    return Checkpoint(model=model, tokenizer=tokenizer, lineage=lineage)


def train_sft_stage(policy: Checkpoint, blend: list[dict], train: dict, stage: str,
                    resume_dir: str) -> tuple[Checkpoint, list[dict]]:
    """Fine-tune ``policy`` on the stage's blend; return the new checkpoint and its step metrics.

    ``train.launch`` (:mod:`~nemotron_cascade.training.launch`) with ``world_size > 1`` trains in a
    launched multi-process job (its ranks save and resume mid-stage state in ``resume_dir``, which
    they must all see); absent or ``world_size: 1``, in this process. Both use the same fingerprint.
    """
    train = dict(train)
    block_size = int(train.pop("block_size"))
    launch = launch_lib.config_from_params(train.pop("launch", None))
    cfg = config_from_params(train)
    blocks, stats = packing.prepare_blocks(blend, policy.tokenizer, block_size, cfg.seed)
    log.info("%s: %s", stage, stats)
    tracking.log_metrics(stats, prefix="data/")
    on_metrics = lambda m, s: tracking.log_metrics(m, s, "train/")  # noqa: E731
    fingerprint = resume.fingerprint(policy.lineage.get("version"), len(blend), blend[0]["id"] if blend else None,
                                     {**train, "block": block_size})
    if launch.distributed:
        history = launch_lib.train_sft_distributed(policy.model, policy.tokenizer, blocks, cfg, launch, on_metrics,
                                                   resume_dir=resume_dir, fingerprint=fingerprint,
                                                   keep_final_state=True)
    else:
        history = train_sft(policy.model, blocks, cfg, on_metrics=on_metrics,
                            resume_dir=resume_dir, keep_final_state=True, fingerprint=fingerprint)
    lineage = {"stage": stage, "parent": {k: policy.lineage.get(k) for k in ("stage", "version", "path")},
               "data": {"samples": len(blend), **stats}, "mlflow_run_id": tracking.current_run_id()}
    return Checkpoint(model=policy.model, tokenizer=policy.tokenizer, lineage=lineage), history
