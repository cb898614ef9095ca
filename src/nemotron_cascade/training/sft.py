"""Supervised fine-tuning loop: packed blocks, assistant-only loss, warm-up and cosine decay.

Variant: token-level mean cross-entropy over the assistant tokens of a batch of packed blocks
(the paper's SFT on teacher responses), AdamW, linear warm-up then cosine decay to
``min_lr_ratio`` of the peak (a constant LR makes accuracy jump around on the tiny model),
gradient clipping. Mid-stage checkpoints (model, optimiser, scheduler, RNG, step) are written every
``checkpoint_every`` steps to ``resume_dir`` with write-then-rename (DeepSpeed: its own sharded
checkpoint, committed the same way, :func:`~nemotron_cascade.training.resume.save_sharded`), and a
rerun with the same fingerprint resumes from the last one; a finished stage removes its resume
state. A step whose loss or gradient norm is NaN/inf is skipped, and too many in a row stop the
run (:mod:`nemotron_cascade.training.faults`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from nemotron_cascade.training import engines
from nemotron_cascade.training.faults import guarded_update
from nemotron_cascade.training.loop import Loop, LoopSettings, MetricsCallback, Resume, StepFn, train_loop
from nemotron_cascade.training.packing import Block

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTConfig:
    """Flat hyper-parameters of one SFT stage."""

    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    max_steps: int = 400
    batch_size: int = 8  # packed blocks per optimiser step
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 100
    max_bad_steps: int = 3  # non-finite loss/grad steps skipped in a row before the run stops
    seed: int = 0
    # training engine (training/engines.py): "torch" (one process) or "deepspeed" (ZeRO; launch
    # with torchrun, every rank takes batch_size / world_size blocks of each global batch)
    engine: str = "torch"
    deepspeed: dict | str | None = None  # config dict, JSON path, or "zero2"/"zero3" in conf/gpu/deepspeed/
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for compute)
    # cross-entropy through the LM head in chunks of this many label positions, each recomputed in
    # backward (training/token_logprobs.py): no [B, L, V] logits. None: the whole head at once
    logits_chunk_tokens: int | None = None

    def __post_init__(self):
        if self.logits_chunk_tokens is not None and self.logits_chunk_tokens < 1:
            raise ValueError(f"SFT logits_chunk_tokens must be null or ≥ 1, got {self.logits_chunk_tokens}")


def loop_settings(cfg: SFTConfig, world_size: int = 1) -> LoopSettings:
    """The training loop's settings of an SFT (or pretraining) stage: cosine decay after warm-up."""
    return LoopSettings(name="sft", max_steps=cfg.max_steps, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                        warmup_steps=cfg.warmup_steps, decay="cosine", min_lr_ratio=cfg.min_lr_ratio,
                        grad_clip=cfg.grad_clip, max_bad_steps=cfg.max_bad_steps,
                        checkpoint_every=cfg.checkpoint_every, seed=cfg.seed, engine=cfg.engine,
                        deepspeed=cfg.deepspeed, micro_batch=cfg.batch_size // world_size,
                        gradient_checkpointing=cfg.gradient_checkpointing)


def collate(blocks: list[Block]):
    """Stack blocks into tensors (all blocks of a run share one length)."""
    import torch

    return (torch.tensor([b.input_ids for b in blocks]), torch.tensor([b.labels for b in blocks]),
            torch.tensor([b.position_ids for b in blocks]))


def token_loss(model, input_ids, labels, position_ids, reduction: str = "mean", chunk_tokens: int | None = None):
    """Next-token cross-entropy over the positions whose label is not -100 (``mean`` or ``sum``).

    The tensors follow the model to its device (CPU here, a GPU at scale). With ``chunk_tokens``
    (``SFTConfig.logits_chunk_tokens``) only the label positions go through the LM head,
    ``chunk_tokens`` at a time, each chunk recomputed in backward
    (:func:`~nemotron_cascade.training.token_logprobs.token_cross_entropy`: the same loss, no
    ``[B, L, V]`` logits); ``None`` runs the whole head over every position.
    """
    import torch.nn.functional as F

    dev = next(model.parameters()).device
    if chunk_tokens is not None:
        from nemotron_cascade.training.token_logprobs import token_cross_entropy

        return token_cross_entropy(model, input_ids.to(dev), labels.to(dev), position_ids.to(dev), chunk_tokens,
                                   reduction)
    logits = model(input_ids=input_ids.to(dev), position_ids=position_ids.to(dev), use_cache=False).logits
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:].to(dev)
    # restart boundaries need no special case: the first token of a sample is a prompt token
    # (masked) and the label that crosses into the next sample is its <|im_start|> (masked too).
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=-100, reduction=reduction)


def token_loss_sum(model, input_ids, labels, position_ids, chunk_tokens: int | None = None):
    """Summed next-token cross-entropy (each rank's share of a global token mean)."""
    return token_loss(model, input_ids, labels, position_ids, reduction="sum", chunk_tokens=chunk_tokens)


def batches(blocks: list[Block], batch_size: int, step: int, seed: int) -> list[Block]:
    """The batch of ``step``: epochs over a per-epoch shuffle, resumable from any step."""
    import random

    per_epoch = max(1, len(blocks) // batch_size)
    epoch, k = divmod(step, per_epoch)
    order = list(range(len(blocks)))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return [blocks[i] for i in order[k * batch_size:(k + 1) * batch_size]]


def train_sft(model, blocks: list[Block], cfg: SFTConfig, on_metrics: MetricsCallback | None = None,
              resume_dir: str | None = None, fingerprint: str = "", keep_final_state: bool = False) -> list[dict]:
    """Train ``model`` in place on packed ``blocks``; return the per-step metrics history.

    The loop (optimiser, schedule, engine, fault guard, resume, metrics) is
    :func:`~nemotron_cascade.training.loop.train_loop`'s; this stage supplies :func:`sft_step`. With
    ``keep_final_state`` the state after the last step stays in ``resume_dir`` (a rerun then returns
    at once): the Kedro run journal clears it only after the node's checkpoint is saved.

    Data parallel (``engine: deepspeed`` under a launcher, world size ``w``): rank ``r`` takes
    blocks ``[r*b/w, (r+1)*b/w)`` of each global batch of ``b = batch_size`` blocks and its loss is
    ``sum_r * w / n_global`` (summed token losses over the global count of assistant tokens), so
    DeepSpeed's mean over ranks is exactly the single-process token mean. Logged losses are that
    global mean (all-reduced) on every rank; at the end the model is a plain full module again
    (ZeRO-3 shards gathered) on every rank.
    """
    if not blocks:
        raise ValueError("train_sft got no training blocks: the SFT blend is empty")
    world = engines.launched_world_size() if cfg.engine != "torch" else 1
    if cfg.batch_size % world:
        raise ValueError(f"SFT batch_size {cfg.batch_size} is not divisible by the world size {world}")
    return train_loop(model, loop_settings(cfg, world), lambda loop: sft_step(loop, blocks, cfg),
                      resume=Resume(resume_dir, fingerprint, keep_final_state), on_metrics=on_metrics)


def sft_step(loop: Loop, blocks: list[Block], cfg: SFTConfig) -> StepFn:
    """One SFT optimiser step on global batch ``step`` (token-mean cross-entropy over assistant
    tokens); its metrics every ``log_every`` steps and at the last."""
    eng = loop.engine
    w, r = eng.world_size, eng.rank
    per = cfg.batch_size // w
    seen = {"tokens": 0, "t0": time.perf_counter()}
    loop.model.train()

    def step(i: int) -> dict | None:
        batch = batches(blocks, cfg.batch_size, i, cfg.seed)
        if w == 1:
            ids, labels, pos = collate(batch)
            loss = local = token_loss(eng.forward_module, ids, labels, pos, chunk_tokens=cfg.logits_chunk_tokens)
            n_tokens = int((labels != -100).sum())
        else:  # this rank's share of the global token mean; the all-reduced mean is the batch's loss
            n_tokens = sum(sum(t != -100 for t in b.labels[1:]) for b in batch)
            ids, labels, pos = collate(batch[r * per:(r + 1) * per])
            local = token_loss_sum(eng.forward_module, ids, labels, pos, cfg.logits_chunk_tokens)
            local = local * (w / max(1, n_tokens))
            loss = eng.all_reduce_mean(local)
        # the finiteness decision is on the global loss, the same on every rank: collectives stay in step
        stepped, grad_norm = guarded_update(eng, loop.guard, i + 1, loss, backward_loss=local)
        if stepped:
            seen["tokens"] += n_tokens
        if (i + 1) % cfg.log_every and i + 1 != cfg.max_steps:
            return None
        return {"loss": loss.item(), "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
                "assistant_tokens_per_s": seen["tokens"] / (time.perf_counter() - seen["t0"])}

    return step
