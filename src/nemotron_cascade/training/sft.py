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
import math
import time
from dataclasses import dataclass
from typing import Callable

from nemotron_cascade.training import engines
from nemotron_cascade.training import resume as resume_lib
from nemotron_cascade.training.faults import FaultGuard, guarded_update
from nemotron_cascade.training.packing import Block

log = logging.getLogger(__name__)

MetricsCallback = Callable[[dict, int], None]


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


def dataclass_from_params(cls, params: dict):
    """``cls(**params)`` with YAML lists turned into tuples, nested ones too (frozen configs)."""
    def tup(v):
        return tuple(tup(x) for x in v) if isinstance(v, list) else v
    return cls(**{k: tup(v) for k, v in params.items()})


def config_from_params(params: dict) -> SFTConfig:
    """An :class:`SFTConfig` from a parameters mapping (YAML lists become tuples)."""
    return dataclass_from_params(SFTConfig, params)


def lr_at(step: int, cfg: SFTConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def collate(blocks: list[Block]):
    """Stack blocks into tensors (all blocks of a run share one length)."""
    import torch

    return (torch.tensor([b.input_ids for b in blocks]), torch.tensor([b.labels for b in blocks]),
            torch.tensor([b.position_ids for b in blocks]))


def token_loss(model, input_ids, labels, position_ids, reduction: str = "mean"):
    """Next-token cross-entropy over the positions whose label is not -100 (``mean`` or ``sum``).

    The tensors follow the model to its device (CPU here, a GPU at scale).
    """
    import torch.nn.functional as F

    dev = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(dev), position_ids=position_ids.to(dev), use_cache=False).logits
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:].to(dev)
    # restart boundaries need no special case: the first token of a sample is a prompt token
    # (masked) and the label that crosses into the next sample is its <|im_start|> (masked too).
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=-100, reduction=reduction)


def token_loss_sum(model, input_ids, labels, position_ids):
    """Summed next-token cross-entropy (each rank's share of a global token mean)."""
    return token_loss(model, input_ids, labels, position_ids, reduction="sum")


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
    """Train ``model`` in place on packed ``blocks`` (see :func:`_train_sft`), with activation
    checkpointing when ``cfg.gradient_checkpointing``."""
    with engines.gradient_checkpointing(model, cfg.gradient_checkpointing):
        return _train_sft(model, blocks, cfg, on_metrics, resume_dir, fingerprint, keep_final_state)


def _train_sft(
    model,
    blocks: list[Block],
    cfg: SFTConfig,
    on_metrics: MetricsCallback | None = None,
    resume_dir: str | None = None,
    fingerprint: str = "",
    keep_final_state: bool = False,
) -> list[dict]:
    """Train ``model`` in place on packed ``blocks``; return the per-step metrics history.

    With ``keep_final_state`` the state after the last step stays in ``resume_dir`` (a rerun then
    returns at once): the Kedro run journal clears it only after the node's checkpoint is saved, so
    a kill between the last step and the save does not cost the stage.
    """
    import torch
    from tqdm.auto import tqdm

    if not blocks:
        raise ValueError("train_sft got no training blocks: the SFT blend is empty")
    if cfg.engine != "torch":
        return _train_sft_engine(model, blocks, cfg, on_metrics, resume_dir, fingerprint, keep_final_state)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    state = resume_lib.load(resume_dir, fingerprint, model, opt, sched) if resume_dir else None
    start, history = (state["step"], state["history"]) if state else (0, [])
    model.train()
    bar = tqdm(range(start, cfg.max_steps), desc="sft", initial=start, total=cfg.max_steps, leave=False)
    t0, tokens = time.perf_counter(), 0
    guard = FaultGuard("sft", cfg.max_bad_steps)
    eng = engines.TorchEngine(model, opt, cfg.grad_clip)
    for step in bar:
        ids, labels, pos = collate(batches(blocks, cfg.batch_size, step, cfg.seed))
        loss = token_loss(model, ids, labels, pos)
        stepped, grad_norm = guarded_update(eng, guard, step + 1, loss)
        if stepped:
            tokens += int((labels != -100).sum())
        sched.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            m = _step_record(loss, sched, grad_norm, tokens, t0)
            history.append({"step": step + 1, **m})
            bar.set_postfix(loss=f"{m['loss']:.3f}")
            if on_metrics:
                on_metrics(m, step + 1)
        if resume_dir and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.max_steps:
            resume_lib.save(resume_dir, fingerprint, model, opt, sched, step + 1, history)
    model.eval()
    if resume_dir and keep_final_state:
        if start < cfg.max_steps:
            resume_lib.save(resume_dir, fingerprint, model, opt, sched, cfg.max_steps, history)
    elif resume_dir:
        resume_lib.clear(resume_dir)
    return history


def _step_record(loss, sched, grad_norm, tokens: int, t0: float) -> dict:
    """The metrics of a logged SFT step."""
    return {"loss": loss.item(), "lr": sched.get_last_lr()[0],
            "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
            "assistant_tokens_per_s": tokens / (time.perf_counter() - t0)}


def _train_sft_engine(model, blocks: list[Block], cfg: SFTConfig, on_metrics: MetricsCallback | None,
                      resume_dir: str | None = None, fingerprint: str = "",
                      keep_final_state: bool = False) -> list[dict]:
    """:func:`train_sft` through a :mod:`~nemotron_cascade.training.engines` engine (DeepSpeed).

    Data parallel: rank ``r`` of ``w`` takes blocks ``[r*b/w, (r+1)*b/w)`` of each global batch of
    ``b = batch_size`` blocks and its loss is ``sum_r * w / n_global`` (summed token losses over
    the global count of assistant tokens), so DeepSpeed's mean over ranks is exactly the
    single-process token mean. Logged losses are that global mean (all-reduced), on every rank;
    ``on_metrics`` runs on rank 0 only. Mid-stage resume as :func:`train_sft`'s, through DeepSpeed's
    sharded checkpoints (:func:`~nemotron_cascade.training.resume.save_sharded`: every rank writes
    its ZeRO shard; the step, history, LR scheduler, fault counters and RNG states ride along; the
    data position is the step). At the end the model is a plain full module again (ZeRO-3 shards
    gathered) on every rank.
    """
    import torch

    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    world = engines.launched_world_size()
    if cfg.batch_size % world:
        raise ValueError(f"SFT batch_size {cfg.batch_size} is not divisible by the world size {world}")
    eng = engines.make_loop_engine(cfg.engine, model, opt, cfg.deepspeed, cfg.grad_clip, cfg.batch_size // world)
    w, r, per = eng.world_size, eng.rank, cfg.batch_size // eng.world_size
    guard = FaultGuard("sft", cfg.max_bad_steps)
    state = resume_lib.load_sharded(resume_dir, fingerprint, eng, opt, sched) if resume_dir else None
    start, history = (state["step"], state["history"]) if state else (0, [])
    if state:
        guard.load_state_dict(state["extra"]["guard"])

    def save(step: int) -> None:
        resume_lib.save_sharded(resume_dir, fingerprint, eng, opt, sched, step, history,
                                extra={"guard": guard.state_dict()})

    model.train()
    t0, tokens = time.perf_counter(), 0
    for step in range(start, cfg.max_steps):
        batch = batches(blocks, cfg.batch_size, step, cfg.seed)
        n_global = sum(sum(t != -100 for t in b.labels[1:]) for b in batch)
        ids, labels, pos = collate(batch[r * per:(r + 1) * per])
        local = token_loss_sum(eng.forward_module, ids, labels, pos) * (w / max(1, n_global))
        loss = eng.all_reduce_mean(local)  # the global token mean, the same on every rank
        # the finiteness decision is on the global loss, the same on every rank: collectives stay in step
        stepped, grad_norm = guarded_update(eng, guard, step + 1, loss, backward_loss=local)
        if stepped:
            tokens += n_global
        sched.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            m = _step_record(loss, sched, grad_norm, tokens, t0)
            history.append({"step": step + 1, **m})
            if on_metrics and eng.is_rank0:
                on_metrics(m, step + 1)
        if resume_dir and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.max_steps:
            save(step + 1)
    if resume_dir and keep_final_state:
        if start < cfg.max_steps:
            save(cfg.max_steps)
    elif resume_dir:
        resume_lib.clear_sharded(resume_dir, eng)
    eng.finish()
    model.eval()
    return history
