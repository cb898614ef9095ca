"""Nodes of an RL stage: choose the stage's prompts, train the policy with GRPO on its reward."""

from __future__ import annotations

import logging
import random
from collections import Counter

from nemotron_cascade import tracking
from nemotron_cascade.data import world
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.evaluation import report
from nemotron_cascade.generation.hf import HFGenerator
from nemotron_cascade.rewards.registry import make_reward
from nemotron_cascade.rl.diagnostics import combine
from nemotron_cascade.rl.trainer import config_from_params, train_grpo
from nemotron_cascade.training import launch as launch_lib
from nemotron_cascade.training import resume

log = logging.getLogger(__name__)


def select_prompts(rl_prompts: list[dict], domains: list[str], max_prompts: int | None, seed: int) -> list[dict]:
    """The stage's RL prompts: rows of its domains, a seeded sample of at most ``max_prompts``."""
    rows = [r for r in rl_prompts if r["domain"] in set(domains)]
    if not rows:
        have = sorted(Counter(r["domain"] for r in rl_prompts))
        raise ValueError(f"rl_prompts has no rows of domains {list(domains)} (it has {have})")
    if max_prompts and len(rows) > max_prompts:
        rows = random.Random(seed).sample(rows, max_prompts)
    log.info("%d RL prompts: %s", len(rows), dict(Counter(r["domain"] for r in rows)))
    return rows


def localise_prompts(policy: Checkpoint, prompts: list[dict], top_k: int, max_new_tokens: int) -> list[dict]:
    """Prompts carrying a repository get their ``context_files`` anew: the policy's own guess of the
    file to change (its greedy patch with every file shown) merged with BM25 into the top-k."""
    from nemotron_cascade.data import localisation

    idx = [i for i, p in enumerate(prompts) if "repo" in p]
    if not idx:
        raise ValueError("localise_prompts: no prompt carries a 'repo'; this stage has nothing to localise")
    generator = HFGenerator(policy.model, policy.tokenizer)
    guesses = localisation.policy_guesses(generator, [prompts[i] for i in idx], max_new_tokens)
    localised, metrics = localisation.localise_with_guesses([prompts[i] for i in idx], top_k, guesses)
    log.info("localisation with the policy's guess: %s", {k: round(v, 3) for k, v in metrics.items()})
    tracking.log_metrics(metrics, prefix="localisation/")
    out = list(prompts)
    for i, row in zip(idx, localised):
        out[i] = row
    return out


def train_rl_stage(policy: Checkpoint, prompts: list[dict], train: dict, reward: str, stage: str,
                   resume_dir: str, diagnostics: list[str] | None = None,
                   reward_model: Checkpoint | None = None) -> tuple[Checkpoint, list[dict]]:
    """GRPO on the stage's prompts with the reward named ``reward``; the new checkpoint and its curves.

    ``reward_model`` is given to the stages wired to one (RLHF, IF-RL): rewards such as
    ``reward_model`` and ``instruction_following_rm`` are built around it. ``train.launch``
    (:mod:`~nemotron_cascade.training.launch`) with ``world_size > 1`` trains in a launched
    multi-process job (``engine: deepspeed``; the ranks rebuild the reward and diagnostics by name,
    and save and resume mid-stage state in ``resume_dir``, which they must all see); absent or
    ``world_size: 1``, in this process. Both use the same fingerprint.
    """
    train = dict(train)
    launch = launch_lib.config_from_params(train.pop("launch", None))
    cfg = config_from_params(train)
    on_metrics = lambda m, s: tracking.log_metrics(m, s, "train/")  # noqa: E731
    rm_version = reward_model.lineage.get("version") if reward_model is not None else None
    fingerprint = resume.fingerprint(policy.lineage.get("version"), [p["id"] for p in prompts], train, reward,
                                     rm_version)
    if launch.distributed:
        history = launch_lib.train_grpo_distributed(
            policy.model, policy.tokenizer, prompts, reward, cfg, launch, on_metrics,
            render_prompt=world.render_prompt, reward_model=reward_model, diagnostics=diagnostics,
            resume_dir=resume_dir, fingerprint=fingerprint, keep_final_state=True)
    else:
        reward_fn = make_reward(reward, reward_model=reward_model, group_size=cfg.group_size)
        history = train_grpo(  # generator None: cfg.rollout_engine's
            policy.model, policy.tokenizer, prompts, reward_fn, cfg, None, world.render_prompt,
            on_metrics=on_metrics, resume_dir=resume_dir, keep_final_state=True, diagnostics=combine(diagnostics),
            reward_name=reward, fingerprint=fingerprint)
    tracking.log_figure(report.plot_curves(history, f"{stage}: GRPO with reward {reward!r}"), f"{stage}_curves.png")
    lineage = {"stage": stage, "reward": reward,
               "parent": {k: policy.lineage.get(k) for k in ("stage", "version", "path")},
               "data": {"prompts": len(prompts), "domains": dict(Counter(p["domain"] for p in prompts))},
               "mlflow_run_id": tracking.current_run_id()}
    if reward_model is not None:
        lineage["reward_model"] = {k: reward_model.lineage.get(k) for k in ("stage", "version", "path")}
    return Checkpoint(model=policy.model, tokenizer=policy.tokenizer, lineage=lineage), history
