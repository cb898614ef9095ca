"""Bradley–Terry reward model: a scalar head on a causal LM body, scored at the last token.

As in the paper (and TRL's ``RewardTrainer``), the reward model is the policy architecture with its
LM head replaced by a linear head giving one scalar; the score of a conversation is the head's
output at its last token. Training minimises the Bradley–Terry loss on preference pairs

    L = −log σ(r_chosen − r_rejected)  +  c · (r_chosen + r_rejected)²

where the second term (reward centering, Eisenstein et al. 2023; TRL's
``center_rewards_coefficient``) keeps scores near zero mean so that they are comparable across
prompts. Validation reports pairwise accuracy on held-out pairs, overall and per flaw. A step whose
loss or gradient norm is NaN/inf is skipped, too many in a row stop training
(:mod:`nemotron_cascade.training.faults`). Mid-stage resume as SFT's: with a ``resume_dir`` the
state is saved every ``checkpoint_every`` steps (:mod:`nemotron_cascade.training.resume`; DeepSpeed:
its sharded checkpoints) and a rerun with the same fingerprint continues from the last one.

The RM's size is a parameter: ``init: policy`` starts from the body of the input checkpoint (the
paper initialises its RM from a large instruct model); ``init: scratch`` builds a fresh tiny Qwen3
of ``size`` — the paper found small RMs easier to hack, and this makes that easy to study.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from nemotron_cascade import chat
from nemotron_cascade.training import engines
from nemotron_cascade.training import resume as resume_lib
from nemotron_cascade.training.faults import FaultGuard, guarded_update

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RMConfig:
    """Hyper-parameters of reward-model training."""

    epochs: int = 2
    batch_size: int = 32          # pairs per optimiser step
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    grad_clip: float = 1.0
    center_coef: float = 0.01     # reward centering; 0 turns it off
    max_length: int = 256         # tokens per scored conversation (longer ones keep their end)
    eval_every: int = 0           # steps between validation passes; 0 = once per epoch
    max_bad_steps: int = 3        # non-finite loss/grad steps skipped in a row before the run stops
    checkpoint_every: int = 100   # steps between mid-stage resume states (with a resume_dir)
    seed: int = 0
    # training engine (training/engines.py): "torch" (one process) or "deepspeed" (ZeRO; launch
    # with torchrun, every rank scores its share of each batch's pairs)
    engine: str = "torch"
    deepspeed: dict | str | None = None  # config dict, JSON path, or "zero2"/"zero3" in conf/gpu/deepspeed/
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for compute)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError(f"RM training needs epochs, batch_size and checkpoint_every ≥ 1, got {self.epochs}, "
                             f"{self.batch_size}, {self.checkpoint_every}")
        if self.engine not in engines.KINDS:
            raise ValueError(f"unknown training engine {self.engine!r}; expected one of {engines.KINDS}")


def render_scored(prompt: str, answer: str) -> str:
    """The text a reward model scores: the user turn (non-thinking) and the assistant's answer.

    Thinking traces are not scored: the RM judges the final answer, in either mode.
    """
    return chat.render([{"role": "user", "content": prompt, "thinking": False},
                        {"role": "assistant", "content": answer}])


def reward_model_from_policy(policy_model, tokenizer):
    """A sequence-classification model (1 label) with the policy's body and a fresh scalar head."""
    import torch
    from transformers import AutoModelForSequenceClassification

    fields = {k: v for k, v in policy_model.config.to_dict().items() if k not in ("id2label", "label2id")}
    config = policy_model.config.__class__.from_dict({**fields, "num_labels": 1, "pad_token_id": tokenizer.pad_token_id})
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_config(config)
    missing, unexpected = rm.model.load_state_dict(policy_model.model.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"policy body does not fit the reward model: missing {missing}, unexpected {unexpected}")
    torch.nn.init.zeros_(rm.score.weight)
    return rm


def reward_model_from_scratch(tokenizer, size: Mapping):
    """A freshly initialised tiny reward model of ``size`` (fields of ``TinyModelConfig``)."""
    import torch
    from transformers import Qwen3ForSequenceClassification

    from nemotron_cascade.models import TinyModelConfig, tiny_config

    cfg = TinyModelConfig(**size)
    torch.manual_seed(cfg.seed)
    rm = Qwen3ForSequenceClassification(tiny_config(tokenizer, cfg, num_labels=1))
    torch.nn.init.zeros_(rm.score.weight)
    return rm


def score_texts(model, tokenizer, texts: Sequence[str], max_length: int = 256, batch_size: int = 64,
                grad: bool = False):
    """Scalar scores of ``texts`` (a float tensor ``[len(texts)]``), read at each text's last token.

    Texts are left-truncated to ``max_length`` tokens (the answer, at the end, is what is scored)
    and right-padded; the HF sequence-classification head picks the last non-pad token.
    """
    import torch

    pad = tokenizer.pad_token_id
    out = []
    for s in range(0, len(texts), batch_size):
        ids = [tokenizer(t, add_special_tokens=False).input_ids[-max_length:] for t in texts[s:s + batch_size]]
        width = max(map(len, ids))
        batch = torch.full((len(ids), width), pad, dtype=torch.long)
        attn = torch.zeros((len(ids), width), dtype=torch.long)
        for b, seq in enumerate(ids):
            batch[b, :len(seq)], attn[b, :len(seq)] = torch.tensor(seq), 1
        with torch.set_grad_enabled(grad):
            dev = next(model.parameters()).device
            out.append(model(input_ids=batch.to(dev), attention_mask=attn.to(dev)).logits[:, 0].float())
    return torch.cat(out) if out else torch.zeros(0)


def bradley_terry_loss(r_chosen, r_rejected, center_coef: float = 0.0):
    """``mean(−log σ(r_c − r_r)) + center_coef · mean((r_c + r_r)²)``."""
    import torch.nn.functional as F

    loss = -F.logsigmoid(r_chosen - r_rejected).mean()
    if center_coef:
        loss = loss + center_coef * ((r_chosen + r_rejected) ** 2).mean()
    return loss


def pairwise_accuracy(model, tokenizer, pairs: Sequence[Mapping], cfg: RMConfig) -> dict:
    """Share of pairs whose chosen text scores higher, overall (``accuracy``) and per flaw/domain,
    with the mean margin and the mean score (centering keeps it near 0)."""
    import torch

    if not pairs:
        return {}
    model.eval()
    rc = score_texts(model, tokenizer, [render_scored(p["prompt"], p["chosen"]) for p in pairs], cfg.max_length)
    rr = score_texts(model, tokenizer, [render_scored(p["prompt"], p["rejected"]) for p in pairs], cfg.max_length)
    right = (rc > rr).float()
    groups: dict[str, list[float]] = defaultdict(list)
    for p, ok in zip(pairs, right.tolist()):
        groups[f"accuracy/{p.get('domain', 'all')}"].append(ok)
        flaw = str(p.get("flaw", "")).split(" ")[0] or "unknown"
        groups[f"accuracy_flaw/{flaw}"].append(ok)
    out = {"accuracy": float(right.mean()), "margin": float((rc - rr).mean()),
           "mean_score": float(torch.cat([rc, rr]).mean())}
    out.update({k: sum(v) / len(v) for k, v in sorted(groups.items())})
    return out


def train_reward_model(model, tokenizer, train_pairs: Sequence[Mapping], val_pairs: Sequence[Mapping],
                       cfg: RMConfig, on_metrics: Callable[[dict, int], None] | None = None,
                       resume_dir: str | None = None, fingerprint: str = "", keep_final_state: bool = False) -> list[dict]:
    """Train the reward model (see :func:`_train_reward_model`), with activation checkpointing when
    ``cfg.gradient_checkpointing``."""
    with engines.gradient_checkpointing(model, cfg.gradient_checkpointing):
        return _train_reward_model(model, tokenizer, train_pairs, val_pairs, cfg, on_metrics, resume_dir,
                                   fingerprint, keep_final_state)


def _train_reward_model(model, tokenizer, train_pairs: Sequence[Mapping], val_pairs: Sequence[Mapping],
                        cfg: RMConfig, on_metrics: Callable[[dict, int], None] | None = None,
                        resume_dir: str | None = None, fingerprint: str = "",
                        keep_final_state: bool = False) -> list[dict]:
    """Train ``model`` in place on ``train_pairs``; the history of train and validation metrics.

    With a ``resume_dir`` the state (model, optimiser, scheduler, RNG, step, history, fault
    counters; the data position is the step) is saved every ``cfg.checkpoint_every`` steps, and a
    run with the same ``fingerprint`` resumes from it (torch: :func:`~nemotron_cascade.training.resume.save`,
    DeepSpeed: :func:`~nemotron_cascade.training.resume.save_sharded`, every rank). A finished run
    removes it, or with ``keep_final_state`` leaves the state after the last step (a rerun then
    returns at once; the Kedro run journal clears it after the node's checkpoint is saved).

    ``cfg.engine: deepspeed`` (under torchrun, world size ``w``): rank ``r`` scores pairs
    ``[⌊rB/w⌋, ⌊(r+1)B/w⌋)`` of each batch of ``B`` pairs and its loss is its pairs' Bradley–Terry
    loss times ``w · n_r / B``, so that DeepSpeed's mean over ranks is the whole batch's loss (both
    terms of the loss are means over pairs). Every batch must give each rank a pair. The logged
    loss and train accuracy are the whole batch's; validation runs on every rank (ZeRO-3 gathers
    parameters in each forward); ``on_metrics`` runs on rank 0; at the end the model is a plain,
    full module on every rank.
    """
    import torch
    from tqdm.auto import tqdm

    if not train_pairs:
        raise ValueError("no training preference pairs")
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(train_pairs) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    eval_every = cfg.eval_every or steps_per_epoch
    texts = [(render_scored(p["prompt"], p["chosen"]), render_scored(p["prompt"], p["rejected"])) for p in train_pairs]
    eng = _make_engine(cfg, model, opt, len(train_pairs))
    w, r = eng.world_size, eng.rank
    guard = FaultGuard("reward model", cfg.max_bad_steps)
    sharded = cfg.engine != "torch"
    if resume_dir:
        load = resume_lib.load_sharded if sharded else resume_lib.load
        state = load(resume_dir, fingerprint, eng if sharded else model, opt, sched)
    else:
        state = None
    history, step = (state["history"], state["step"]) if state else ([], 0)
    if state:
        guard.load_state_dict(state["extra"]["guard"])

    def save(at: int) -> None:
        save_state = resume_lib.save_sharded if sharded else resume_lib.save
        save_state(resume_dir, fingerprint, eng if sharded else model, opt, sched, at, history,
                   extra={"guard": guard.state_dict()})

    start = step
    first_epoch, first_batch = divmod(start, steps_per_epoch)
    bar = tqdm(total=total, initial=start, desc="reward model", leave=False, disable=not eng.is_rank0)
    for epoch in range(first_epoch, cfg.epochs):
        order = list(range(len(texts)))
        random.Random(cfg.seed * 1009 + epoch).shuffle(order)
        skip = first_batch * cfg.batch_size if epoch == first_epoch else 0  # a resumed run's batches already done
        for s in range(skip, len(order), cfg.batch_size):
            t0 = time.perf_counter()
            batch = order[s:s + cfg.batch_size]
            idx = batch[len(batch) * r // w:len(batch) * (r + 1) // w]  # this rank's share (all of it for w = 1)
            model.train()
            scores = score_texts(eng.forward_module, tokenizer, [texts[i][0] for i in idx] + [texts[i][1] for i in idx],
                                 cfg.max_length, batch_size=2 * len(idx), grad=True)
            rc, rr = scores[:len(idx)], scores[len(idx):]
            local = bradley_terry_loss(rc, rr, cfg.center_coef)
            if w > 1:  # rank r's share of the batch mean; the all-reduced mean is the batch's loss
                local = local * (len(idx) * w / len(batch))
            loss = eng.all_reduce_mean(local)
            _, grad_norm = guarded_update(eng, guard, step + 1, loss, backward_loss=local)
            sched.step()
            step += 1
            right = (rc > rr).float()
            train_accuracy = float(right.mean()) if w == 1 else float(eng.all_reduce_sum(right.sum())) / len(batch)
            m = {"loss": float(loss.detach()), "train_accuracy": train_accuracy,
                 "grad_norm": float("nan") if grad_norm is None else float(grad_norm), "lr": sched.get_last_lr()[0],
                 "pairs_per_s": len(batch) / (time.perf_counter() - t0), "epoch": epoch}
            if step % eval_every == 0 or step == total:
                val = pairwise_accuracy(eng.forward_module, tokenizer, val_pairs, cfg)
                m.update({f"val_{k}": v for k, v in val.items()})
                if eng.is_rank0:
                    log.info("reward model step %d: loss %.3f, validation accuracy %.3f", step, m["loss"],
                             m.get("val_accuracy", float("nan")))
            history.append({"step": step, **m})
            bar.update(1)
            bar.set_postfix(loss=f"{m['loss']:.3f}")
            if on_metrics and eng.is_rank0:
                on_metrics(m, step)
            if resume_dir and step % cfg.checkpoint_every == 0 and step < total:
                save(step)
    bar.close()
    if resume_dir and keep_final_state:
        if start < total:
            save(total)
    elif resume_dir:
        if sharded:
            resume_lib.clear_sharded(resume_dir, eng)
        else:
            resume_lib.clear(resume_dir)
    eng.finish()
    model.eval()
    return history


def _make_engine(cfg: RMConfig, model, opt, n_pairs: int):
    """The training engine of ``cfg``; DeepSpeed's ``auto`` batch sizes from ``batch_size`` (pairs)."""
    if cfg.engine == "torch":
        return engines.make_engine("torch", model, opt, grad_clip=cfg.grad_clip)
    world = engines.launched_world_size()
    smallest = min(cfg.batch_size, n_pairs % cfg.batch_size or cfg.batch_size)
    if smallest < world:
        raise ValueError(f"reward model on {world} ranks: a batch of {smallest} pairs leaves a rank without pairs "
                         "(raise batch_size, or drop pairs so the last batch is not that small)")
    return engines.make_loop_engine(cfg.engine, model, opt, cfg.deepspeed, cfg.grad_clip, -(-cfg.batch_size // world))
