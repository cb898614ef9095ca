"""DeepSpeed ZeRO vs plain torch on the tiny model: per-step SFT, GRPO and reward-model runs, for the parity test.

Launch with ``torchrun --nproc_per_node 2 -m ds_parity --out FILE
[--tasks sft grpo rm]``. For each task rank 0 first trains a fresh tiny model with the plain torch
engine (one process, whole global batch), then every rank trains fresh copies with DeepSpeed
ZeRO-2 and ZeRO-3 in fp32, each rank taking its share of every global batch. Rank 0 alone writes
``FILE``: per task and run, the per-step losses and gradient norms, the largest absolute
difference of the final weights from the torch run (``max_weight_diff``) and the relative size of
that difference against the torch run's total update (``rel_update_diff`` = ‖w − w_torch‖₂ /
‖w_torch − w_0‖₂), and the trained tokens/s of the loop (engine set-up excluded; used by
``benchmarks/bench_engines.py``).

* ``sft``: :func:`~nemotron_cascade.training.sft.train_sft` on packed blocks.
* ``grpo``: :func:`~nemotron_cascade.rl.trainer.train_grpo` on fixed rollouts
  (:class:`FixedRollouts`: completions that depend on the prompt, the sample index and the step,
  never on the sampling seed or the rank), so sampling is not part of the comparison while the
  loop's sharding, reward gathering, advantages and prompt filter are. One step is poisoned
  (``--grpo-poison-step``): one completion of the last prompt, which sits on the last rank, gets a
  ``-inf`` log-prob, so that step's loss is not finite on that rank only and every run must skip
  it and go on identically (for DeepSpeed: drop the micro-batches the ranks already accumulated).
  Tokens/s: trained (unmasked) completion tokens over the time of the optimiser phase (scoring,
  log-probs, backward, step: each step's time minus its rollout time).
* ``rm``: :func:`~nemotron_cascade.training.reward_model.train_reward_model` on preference pairs
  (a fresh tiny reward model, validation at the end).

``--precision bf16`` runs the ZeRO stages with the gpu profile's ``"bf16": {"enabled": true}`` on
a model loaded in bf16 (no parity with fp32 torch is expected there: ``--no-torch``). Every run
records, per logged step, whether rank 0's weights changed in that step (``changed``: its module
parameters, under ZeRO-3 its shards) and whether every weight is finite at the end: a skipped
non-finite step must leave them as they were, whatever DeepSpeed's own overflow handling does.
``--sft-poison-step`` poisons SFT the same way: the last rank's loss of that step is NaN.
``--no-overflow-check`` turns DeepSpeed's ``bf16.check_grad_overflow`` off behind the engine's back
(the engine forces it on): DeepSpeed then applies the poisoned NaN update, and the run must stop.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

POISON_ID = 4  # a completion starting with this token id gets a -inf log-prob (the poisoned step)


def _samples():
    from nemotron_cascade.data import sft as sft_data
    from nemotron_cascade.data import world

    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", 30, 0)]
    return sft_data.teacher_samples(rows, 0.7, 0.2, 0, world.oracle_response)


def tiny_tokenizer_and_model():
    """The tokenizer and a fresh-policy factory, built like ``tests/conftest.py``."""
    from nemotron_cascade import chat, models

    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in _samples()), 400)

    def fresh():
        return models.build_tiny_model(tok, models.TinyModelConfig(
            hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))
    return tok, fresh


def fp32_zero(stage: int) -> dict:
    return {"zero_optimization": {"stage": stage}, "bf16": {"enabled": False},
            "steps_per_print": 10**9, "zero_allow_untested_optimizer": True}


def bf16_zero(stage: int) -> dict:
    """ZeRO ``stage`` with bf16 as conf/gpu/deepspeed/*.json enable it (DeepSpeed's fp32 master copy)."""
    return {**fp32_zero(stage), "bf16": {"enabled": True}}


class WeightWatch:
    """An ``on_metrics`` callback (rank 0, after every logged step): whether the step changed the
    module's weights (under ZeRO-3 this rank's shards, ``ds_tensor``), in ``changed``."""

    def __init__(self, model):
        self.model, self.changed = model, []
        self.last = self._snapshot()

    def _snapshot(self) -> list:
        return [getattr(p, "ds_tensor", p).detach().clone() for p in self.model.parameters()]

    def __call__(self, metrics, step) -> None:
        import torch

        now = self._snapshot()
        self.changed.append(any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(now, self.last)))
        self.last = now


def all_finite(model) -> bool:
    """Whether every weight of ``model`` (a plain module again after training) is finite."""
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


# ----------------------------------------------------------------------------------------- GRPO
class FixedRollouts:
    """A stand-in rollout engine: completion ``j`` of prompt ``p`` at call ``c`` (= the step) is a
    seeded random token sequence of ``random.Random(f"{c}|{p}|{j}")``, finished (ending in eos) 3
    times in 4, whoever asks and whatever the sampling seed. ``poison=(call, prompt)`` starts that
    prompt's first completion at that call with :data:`POISON_ID`. The call count is the
    generator's state (``state_dict``): ``train_grpo`` saves it with a mid-stage resume state, so a
    resumed run gets the rollouts of its step."""

    def __init__(self, tokenizer, poison: tuple[int, str] | None = None):
        self.tok, self.poison, self.calls = tokenizer, poison, 0

    def generate(self, prompts, params):
        from nemotron_cascade.generation.base import Completion

        eos, out = self.tok.eos_token_id, []
        for p in prompts:
            group = []
            for j in range(params.n):
                rng = random.Random(f"{self.calls}|{p}|{j}")
                length = rng.randint(1, params.max_new_tokens)
                ids = [rng.randrange(POISON_ID + 1, len(self.tok)) for _ in range(length)]
                finished = rng.random() < 0.75
                if finished:
                    ids[-1] = eos
                if j == 0 and self.poison == (self.calls, p):
                    ids[0] = POISON_ID
                group.append(Completion(self.tok.decode(ids, skip_special_tokens=True), ids, finished))
            out.append(group)
        self.calls += 1
        return out

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = state["calls"]


def fixed_rollouts(cfg, model, tokenizer) -> FixedRollouts:
    """:class:`FixedRollouts` as a launched GRPO job's generator factory (the arguments of
    ``trainer.build_generator``): ``launch.train_grpo_distributed(..., generator=fixed_rollouts)``."""
    return FixedRollouts(tokenizer)


def poisoned(sequence_logprobs):
    """``sequence_logprobs`` with a ``-inf`` first log-prob for completions that start with
    :data:`POISON_ID` (fault injection: a micro-batch holding one has a NaN or inf loss)."""
    import torch

    def logprobs_with_poison(model, prompt_ids, completion_ids, pad_id):
        logprobs, mask, entropy = sequence_logprobs(model, prompt_ids, completion_ids, pad_id)
        first = torch.zeros_like(mask, dtype=torch.bool)
        first[:, 0] = torch.tensor([bool(c) and c[0] == POISON_ID for c in completion_ids], device=mask.device)
        return logprobs.masked_fill(first, float("-inf")), mask, entropy
    return logprobs_with_poison


GRPO_ROWS = [{"id": f"p{i}", "prompt": f"Write something {i}."} for i in range(16)]


def _render(row, thinking):
    return f"<|im_start|>user\n{row['prompt']}<|im_end|>\n<|im_start|>assistant\n"


def _digit_share(responses, rows):
    return [sum(c.isdigit() for c in r) / max(1, len(r)) for r in responses]


def run_grpo(args, tok, fresh, engine: dict):
    """One GRPO run on :class:`FixedRollouts`; ``(model, record)``."""
    from unittest import mock

    from nemotron_cascade.rl import trainer

    cfg = trainer.GRPOConfig(max_steps=args.grpo_steps, prompts_per_step=args.grpo_prompts, group_size=args.grpo_group,
                             lr=1e-2, length_schedule=((0, args.grpo_max_tokens),), micro_batch_size=args.grpo_micro,
                             overlong_filter=True, dynamic_filter=True, seed=0, **engine)
    poison = None
    if args.grpo_poison_step >= 0:  # the last prompt of that step: it sits on the last rank
        pool = trainer.PromptPool(len(GRPO_ROWS), cfg.seed, cfg.dynamic_filter, cfg.readmit_prob)
        for _ in range(args.grpo_poison_step):
            pool.take(cfg.prompts_per_step)
        if (args.grpo_poison_step + 1) * cfg.prompts_per_step > len(GRPO_ROWS):
            raise ValueError("the poisoned step must fall in the first epoch (the pool replay ignores filtering)")
        poison = (args.grpo_poison_step, _render(GRPO_ROWS[pool.take(cfg.prompts_per_step)[-1]], True))
    model = fresh()
    watch = WeightWatch(model)
    from nemotron_cascade.rl import update

    with mock.patch.object(update, "sequence_logprobs", poisoned(update.sequence_logprobs)):
        hist = trainer.train_grpo(model, tok, GRPO_ROWS, _digit_share, cfg, FixedRollouts(tok, poison), _render,
                                  on_metrics=watch)
    train_s = sum((1 - h["rollout_share"]) / h["steps_per_s"] for h in hist)  # each step minus its rollout
    return model, {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist],
                   "reward": [h["reward"] for h in hist],
                   "tokens_per_s": sum(h["trained_tokens"] for h in hist) / train_s,
                   "poisoned_step": None if poison is None else poison[0] + 1, "changed": watch.changed,
                   "finite": all_finite(model), "dtype": str(next(model.parameters()).dtype)}


# ----------------------------------------------------------------------------------------- SFT, RM
def poisoned_sft_loss(loss_fn, step: int):
    """``loss_fn`` (``token_loss`` or ``token_loss_sum``) made NaN at its call ``step`` (0-based) on
    the last rank: that step's global loss is NaN on every rank (one call per rank and step)."""
    import torch.distributed as dist

    calls = {"n": 0}

    def loss_with_poison(*args, **kwargs):
        loss = loss_fn(*args, **kwargs)
        last = not dist.is_initialized() or dist.get_rank() == dist.get_world_size() - 1
        if calls["n"] == step and last:
            loss = loss * float("nan")
        calls["n"] += 1
        return loss
    return loss_with_poison


def run_sft(args, tok, fresh, engine: dict):
    from unittest import mock

    from nemotron_cascade.training import packing, sft

    blocks, _ = packing.prepare_blocks(_samples(), tok, args.seq_len)
    cfg = sft.SFTConfig(lr=1e-2, max_steps=args.steps, warmup_steps=2, batch_size=args.batch_size, log_every=1,
                        **engine)
    model = fresh()
    watch = WeightWatch(model)
    step = args.sft_poison_step
    with mock.patch.object(sft, "token_loss", poisoned_sft_loss(sft.token_loss, step)), \
            mock.patch.object(sft, "token_loss_sum", poisoned_sft_loss(sft.token_loss_sum, step)):
        hist = sft.train_sft(model, blocks, cfg, on_metrics=watch)
    return model, {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist],
                   "tokens_per_s": hist[-1]["assistant_tokens_per_s"], "changed": watch.changed,
                   "finite": all_finite(model), "dtype": str(next(model.parameters()).dtype)}


def run_rm(args, tok, fresh, engine: dict):
    from nemotron_cascade.data import preferences, world
    from nemotron_cascade.training import reward_model as rm_lib

    pairs = preferences.build_pairs(world.generate_tasks("general", "sft", 80, 0), ["general"], None, 0.25, 0)
    train = [p for p in pairs if p["split"] == "train"][:args.rm_steps * 8]
    val = [p for p in pairs if p["split"] == "validation"][:16]
    model = fresh()
    hist = rm_lib.train_reward_model(model, tok, train, val, rm_lib.RMConfig(
        epochs=1, batch_size=8, lr=1e-3, warmup_steps=2, eval_every=args.rm_steps, **engine))
    return model, {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist],
                   "val_accuracy": hist[-1]["val_accuracy"], "val_margin": hist[-1]["val_margin"],
                   "tokens_per_s": None}


def _fresh_rm(tok):
    from nemotron_cascade.training import reward_model as rm_lib

    return lambda: rm_lib.reward_model_from_scratch(tok, {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                                          "num_kv_heads": 1, "intermediate_size": 64})


TASKS = {"sft": run_sft, "grpo": run_grpo, "rm": run_rm}


def _overflow_check_off() -> None:
    """Fault injection: the engine's config keeps ``bf16.check_grad_overflow`` false."""
    from nemotron_cascade.training import engines

    forced = engines.with_overflow_check

    def off(config):
        config = forced(config)
        if "bf16" in config:
            config["bf16"] = {**config["bf16"], "check_grad_overflow": False}
        return config
    engines.with_overflow_check = off


def weight_diffs(model, ref: dict, init: dict) -> dict:
    """``max_weight_diff`` (max |w − w_torch|) and ``rel_update_diff`` (‖w − w_torch‖₂ / ‖w_torch − w₀‖₂)
    of ``model`` against the torch run's final weights ``ref`` and the initial weights ``init``."""
    sd = model.state_dict()
    diff = sum(float((sd[k] - v).double().pow(2).sum()) for k, v in ref.items()) ** 0.5
    update = sum(float((v - init[k]).double().pow(2).sum()) for k, v in ref.items()) ** 0.5
    return {"max_weight_diff": max(float((sd[k] - v).abs().max()) for k, v in ref.items()),
            "rel_update_diff": diff / max(update, 1e-30)}


def main(argv=None) -> None:
    import torch
    import torch.distributed as dist

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", nargs="*", default=["sft"], choices=sorted(TASKS))
    ap.add_argument("--steps", type=int, default=5, help="SFT steps")
    ap.add_argument("--batch-size", type=int, default=4, help="SFT blocks per step")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--grpo-steps", type=int, default=4)
    ap.add_argument("--grpo-prompts", type=int, default=4)
    ap.add_argument("--grpo-group", type=int, default=4)
    ap.add_argument("--grpo-micro", type=int, default=4, help="sequences per micro-batch")
    ap.add_argument("--grpo-max-tokens", type=int, default=16)
    ap.add_argument("--grpo-poison-step", type=int, default=2, help="0-based step to poison; -1: none")
    ap.add_argument("--sft-poison-step", type=int, default=-1, help="0-based SFT step to poison; -1: none")
    ap.add_argument("--rm-steps", type=int, default=4, help="reward-model steps of 8 pairs")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: the ZeRO runs with DeepSpeed's bf16 on a model loaded in bf16")
    ap.add_argument("--stages", type=int, nargs="*", default=[2, 3])
    ap.add_argument("--no-torch", action="store_true", help="skip the plain torch reference runs")
    ap.add_argument("--no-overflow-check", action="store_true", help="bf16.check_grad_overflow forced off")
    args = ap.parse_args(argv)
    if args.no_overflow_check:
        _overflow_check_off()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tok, fresh_policy = tiny_tokenizer_and_model()
    rank0 = int(os.environ.get("RANK", "0")) == 0
    out: dict = {"args": vars(args)}
    for task in args.tasks:
        run, fresh = TASKS[task], _fresh_rm(tok) if task == "rm" else fresh_policy
        if args.precision == "bf16":
            fresh = (lambda make: lambda: make().to(torch.bfloat16))(fresh)
        zero = bf16_zero if args.precision == "bf16" else fp32_zero
        res, ref, init = {}, None, fresh().state_dict()
        if rank0 and not args.no_torch:
            t = time.perf_counter()
            model, res["torch"] = run(args, tok, fresh, {})
            res["torch"]["seconds"] = time.perf_counter() - t
            ref = model.state_dict()
        for stage in args.stages:
            t = time.perf_counter()
            model, rec = run(args, tok, fresh, {"engine": "deepspeed", "deepspeed": zero(stage)})
            rec.update(seconds=time.perf_counter() - t, world_size=dist.get_world_size())
            if rank0 and ref is not None:
                rec.update(weight_diffs(model, ref, init))
            res[f"zero{stage}"] = rec
        out[task] = res
    finish(out, args.out, rank0)


def finish(out: dict, path: str, rank0: bool) -> None:
    """Rank 0 writes the results to ``path``; every rank leaves the process group together."""
    import torch.distributed as dist

    if rank0:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
