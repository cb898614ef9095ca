"""Hyper-parameters of a GRPO stage and the schedules they define (see :mod:`nemotron_cascade.rl.trainer`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nemotron_cascade.training import engines
from nemotron_cascade.training.loop import LoopSettings

ROLLOUT_ENGINES = ("hf", "vllm", "embedded")  # generation/engines.py


@dataclass(frozen=True)
class GRPOConfig:
    """Flat hyper-parameters of one GRPO stage."""

    max_steps: int = 40
    prompts_per_step: int = 8
    group_size: int = 8
    lr: float = 3e-5
    warmup_steps: int = 0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    thinking_ratio: float = 1.0
    length_schedule: tuple = ((0, 128),)
    # input-context curriculum, ``[[from_step, max_prompt_tokens], ...]``; empty: prompts as rendered
    context_schedule: tuple = ()
    overlong_filter: bool = True
    dynamic_filter: bool = True
    readmit_prob: float = 0.1
    shuffle_rewards: bool = False
    micro_batch_size: int = 32  # sequences per forward/backward (gradients accumulate over the batch)
    rollout_batch_size: int = 64  # sequences per generate call
    checkpoint_every: int = 10
    max_bad_steps: int = 3  # steps with a NaN/inf reward, loss or grad skipped in a row before the run stops
    seed: int = 0
    # training engine (training/engines.py): "torch" (one process) or "deepspeed" (ZeRO; launch with
    # torchrun, every rank samples and trains on prompts_per_step / world_size prompts of each step)
    engine: str = "torch"
    deepspeed: dict | str | None = None  # config dict, JSON path, or "zero2"/"zero3" in conf/gpu/deepspeed/
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for compute)
    # token log-probs through the LM head in chunks of this many completion positions, each recomputed
    # in backward (training/token_logprobs.py): no [B, L, V] logits. None: the whole head at once
    logits_chunk_tokens: int | None = None
    # each distinct prompt of a micro-batch through the model once for its group (rl/shared_prompt.py);
    # the model is called twice per micro-batch, so the torch engine only
    share_prompt_forward: bool = False
    # rollout engine: "hf" (transformers generate on the trained module), "embedded" (generation/embedded.py) or "vllm"
    # (generation/vllm_engine.VLLMGenerator, its weights synced after every optimiser step)
    rollout_engine: str = "hf"
    vllm: dict | None = None  # keyword arguments of VLLMGenerator.from_pretrained (sleep_level, ...)

    def __post_init__(self):
        if self.engine not in engines.KINDS or self.rollout_engine not in ROLLOUT_ENGINES:
            raise ValueError(f"GRPO engine must be one of {engines.KINDS} and rollout_engine one of "
                             f"{ROLLOUT_ENGINES}, got {self.engine!r}, {self.rollout_engine!r}")
        if self.max_steps < 1 or self.prompts_per_step < 1 or self.group_size < 2:
            raise ValueError(f"GRPO needs max_steps ≥ 1, prompts_per_step ≥ 1 and group_size ≥ 2, got "
                             f"{self.max_steps}, {self.prompts_per_step}, {self.group_size}")
        if self.share_prompt_forward and self.engine != "torch":
            raise ValueError(f"share_prompt_forward runs on the torch engine only (it calls the model twice per "
                             f"micro-batch), got engine {self.engine!r}")
        if self.logits_chunk_tokens is not None and self.logits_chunk_tokens < 1:
            raise ValueError(f"logits_chunk_tokens must be null or ≥ 1, got {self.logits_chunk_tokens}")
        if not 0.0 <= self.thinking_ratio <= 1.0:
            raise ValueError(f"thinking_ratio must be in [0, 1], got {self.thinking_ratio}")
        for name in ("length_schedule", "context_schedule"):
            schedule = getattr(self, name)
            if (schedule or name == "length_schedule") and (not schedule or schedule[0][0] != 0):
                raise ValueError(f"{name} must start at step 0, got {schedule}")


def max_tokens_at(step: int, schedule: Sequence[Sequence[int]]) -> int:
    """The response-length limit at ``step``: the last schedule entry whose start is ≤ step."""
    limit = schedule[0][1]
    for start, tokens in schedule:
        if step >= start:
            limit = tokens
    return int(limit)


def loop_settings(cfg: GRPOConfig, world_size: int = 1) -> LoopSettings:
    """The training loop's settings of a GRPO stage: warm-up, then the paper's constant LR.

    DeepSpeed's ``auto`` batch sizes are the loop's micro-batches (the update accumulates them
    itself: ``gradient_accumulation_steps`` 1, see engines)."""
    micro = min(cfg.micro_batch_size, cfg.prompts_per_step // world_size * cfg.group_size)
    return LoopSettings(name="GRPO", max_steps=cfg.max_steps, lr=cfg.lr, betas=cfg.betas,
                        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip,
                        max_bad_steps=cfg.max_bad_steps, checkpoint_every=cfg.checkpoint_every, seed=cfg.seed,
                        engine=cfg.engine, deepspeed=cfg.deepspeed, micro_batch=micro,
                        gradient_checkpointing=cfg.gradient_checkpointing, progress=("reward", "accuracy"))
