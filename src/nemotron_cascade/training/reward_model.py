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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nemotron_cascade import chat
from nemotron_cascade.training import engines
from nemotron_cascade.training.faults import guarded_update
from nemotron_cascade.training.loop import Loop, LoopSettings, MetricsCallback, Resume, StepFn, train_loop

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
    config = policy_model.config.__class__.from_dict(
        {**fields, "num_labels": 1, "pad_token_id": tokenizer.pad_token_id})
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


def loop_settings(cfg: RMConfig, total_steps: int, world_size: int = 1) -> LoopSettings:
    """The training loop's settings of the reward model: warm-up, then a constant LR."""
    return LoopSettings(name="reward model", max_steps=total_steps, lr=cfg.lr, weight_decay=cfg.weight_decay,
                        warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip, max_bad_steps=cfg.max_bad_steps,
                        checkpoint_every=cfg.checkpoint_every, seed=cfg.seed, engine=cfg.engine,
                        deepspeed=cfg.deepspeed, micro_batch=-(-cfg.batch_size // world_size),
                        gradient_checkpointing=cfg.gradient_checkpointing)


def train_reward_model(model, tokenizer, train_pairs: Sequence[Mapping], val_pairs: Sequence[Mapping],
                       cfg: RMConfig, on_metrics: MetricsCallback | None = None,
                       resume_dir: str | None = None, fingerprint: str = "",
                       keep_final_state: bool = False) -> list[dict]:
    """Train ``model`` in place on ``train_pairs``; the history of train and validation metrics.

    ``cfg.epochs`` epochs of seeded shuffles of the pairs, ``cfg.batch_size`` pairs a step, through
    :func:`~nemotron_cascade.training.loop.train_loop` (optimiser, schedule, engine, fault guard,
    mid-stage resume in ``resume_dir`` under ``fingerprint``; the data position is the step).
    Validation (pairwise accuracy, overall and per flaw) runs every ``eval_every`` steps (default:
    once per epoch) and at the end.

    ``cfg.engine: deepspeed`` (under a launcher, world size ``w``): rank ``r`` scores pairs
    ``[⌊rB/w⌋, ⌊(r+1)B/w⌋)`` of each batch of ``B`` pairs and its loss is its pairs' Bradley–Terry
    loss times ``w · n_r / B``, so that DeepSpeed's mean over ranks is the whole batch's loss (both
    terms of the loss are means over pairs). Every batch must give each rank a pair. The logged
    loss and train accuracy are the whole batch's; validation runs on every rank (ZeRO-3 gathers
    parameters in each forward); ``on_metrics`` runs on rank 0; at the end the model is a plain,
    full module on every rank.
    """
    if not train_pairs:
        raise ValueError("no training preference pairs")
    world = engines.launched_world_size() if cfg.engine != "torch" else 1
    smallest = min(cfg.batch_size, len(train_pairs) % cfg.batch_size or cfg.batch_size)
    if smallest < world:
        raise ValueError(f"reward model on {world} ranks: a batch of {smallest} pairs leaves a rank without pairs "
                         "(raise batch_size, or drop pairs so the last batch is not that small)")
    steps_per_epoch = -(-len(train_pairs) // cfg.batch_size)
    settings = loop_settings(cfg, steps_per_epoch * cfg.epochs, world)
    return train_loop(model, settings, lambda loop: rm_step(loop, tokenizer, train_pairs, val_pairs, cfg),
                      resume=Resume(resume_dir, fingerprint, keep_final_state), on_metrics=on_metrics)


def epoch_batches(n_pairs: int, cfg: RMConfig, epoch: int) -> list[list[int]]:
    """The pair indices of each step of ``epoch``: a seeded shuffle cut into batches of ``batch_size``."""
    order = list(range(n_pairs))
    random.Random(cfg.seed * 1009 + epoch).shuffle(order)
    return [order[s:s + cfg.batch_size] for s in range(0, n_pairs, cfg.batch_size)]


def rm_step(loop: Loop, tokenizer, train_pairs: Sequence[Mapping], val_pairs: Sequence[Mapping],
            cfg: RMConfig) -> StepFn:
    """One Bradley–Terry step on the step's batch of pairs (this rank's share of it)."""

    eng, model = loop.engine, loop.model
    w, r = eng.world_size, eng.rank
    texts = [(render_scored(p["prompt"], p["chosen"]), render_scored(p["prompt"], p["rejected"])) for p in train_pairs]
    steps_per_epoch = -(-len(texts) // cfg.batch_size)
    eval_every = cfg.eval_every or steps_per_epoch

    def step(i: int) -> dict:
        t0 = time.perf_counter()
        epoch, k = divmod(i, steps_per_epoch)
        batch = epoch_batches(len(texts), cfg, epoch)[k]
        idx = batch[len(batch) * r // w:len(batch) * (r + 1) // w]  # this rank's share (all of it for w = 1)
        model.train()
        scores = score_texts(eng.forward_module, tokenizer, [texts[j][0] for j in idx] + [texts[j][1] for j in idx],
                             cfg.max_length, batch_size=2 * len(idx), grad=True)
        rc, rr = scores[:len(idx)], scores[len(idx):]
        local = bradley_terry_loss(rc, rr, cfg.center_coef)
        if w > 1:  # rank r's share of the batch mean; the all-reduced mean is the batch's loss
            local = local * (len(idx) * w / len(batch))
        loss = eng.all_reduce_mean(local)
        _, grad_norm = guarded_update(eng, loop.guard, i + 1, loss, backward_loss=local)
        right = (rc > rr).float()
        train_accuracy = float(right.mean()) if w == 1 else float(eng.all_reduce_sum(right.sum())) / len(batch)
        m = {"loss": float(loss.detach()), "train_accuracy": train_accuracy,
             "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
             "pairs_per_s": len(batch) / (time.perf_counter() - t0), "epoch": epoch}
        if (i + 1) % eval_every == 0 or i + 1 == loop.settings.max_steps:
            val = pairwise_accuracy(eng.forward_module, tokenizer, val_pairs, cfg)
            m.update({f"val_{k}": v for k, v in val.items()})
            if eng.is_rank0:
                log.info("reward model step %d: loss %.3f, validation accuracy %.3f", i + 1, m["loss"],
                         m.get("val_accuracy", float("nan")))
        return m

    return step
