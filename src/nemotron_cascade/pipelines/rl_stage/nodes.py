"""Nodes of an RL stage: choose the stage's prompts, localise them, train GRPO, draw its curves."""

from __future__ import annotations

import logging
import random
from collections import Counter

from nemotron_cascade import stages
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig
from nemotron_cascade.training import placement

log = logging.getLogger(__name__)


def select_prompts(rl_prompts: list[dict], config: RLStageConfig) -> list[dict]:
    """The stage's RL prompts: rows of its domains, a seeded sample of at most ``max_prompts``."""
    rows = [r for r in rl_prompts if r["domain"] in set(config.domains)]
    if not rows:
        have = sorted(Counter(r["domain"] for r in rl_prompts))
        raise ValueError(f"rl_prompts has no rows of domains {list(config.domains)} (it has {have})")
    if config.max_prompts and len(rows) > config.max_prompts:
        rows = random.Random(config.train.seed).sample(rows, config.max_prompts)
    log.info("%d RL prompts: %s", len(rows), dict(Counter(r["domain"] for r in rows)))
    return rows


def localise_prompts(policy: Checkpoint, prompts: list[dict], config: RLStageConfig) -> list[dict]:
    """Prompts carrying a repository get their ``context_files`` anew: the policy's own guess of the
    file to change (its greedy patch with every file shown) merged with BM25 into the top-k."""
    from nemotron_cascade import tracking
    from nemotron_cascade.data import localisation
    from nemotron_cascade.generation.engines import make_generator

    idx = [i for i, p in enumerate(prompts) if "repo" in p]
    if not idx:
        raise ValueError("localise_prompts: no prompt carries a 'repo'; this stage has nothing to localise")
    train = config.train  # the stage's own rollout engine guesses (vLLM in the gpu profile)
    generator = make_generator(train.rollout_engine, policy.model, policy.tokenizer, train.rollout_batch_size,
                               train.vllm, train.seed, device=config.device)
    guesses = localisation.policy_guesses(generator, [prompts[i] for i in idx], config.localisation.max_new_tokens)
    localised, metrics = localisation.localise_with_guesses([prompts[i] for i in idx], config.localisation.top_k,
                                                            guesses)
    log.info("localisation with the policy's guess: %s", {k: round(v, 3) for k, v in metrics.items()})
    tracking.log_metrics(metrics, prefix="localisation/")
    out = list(prompts)
    for i, row in zip(idx, localised):
        out[i] = row
    return out


def train_rl_stage(policy: Checkpoint, prompts: list[dict], config: RLStageConfig, stage: str,
                   reward_model: Checkpoint | None = None) -> tuple[Checkpoint, list[dict]]:
    """GRPO on the stage's prompts with its reward; the new checkpoint and its per-step curves.

    ``reward_model`` reaches the stages whose parameters say ``reward_model: true`` (RLHF, IF-RL):
    rewards such as ``reward_model`` and ``instruction_following_rm`` are built around it.
    Training is local or launched, fingerprinted and resumable: :mod:`nemotron_cascade.stages`.
    """
    if config.reward_model != (reward_model is not None):
        raise ValueError(f"{stage}: reward_model is {config.reward_model} in its parameters but the pipeline was "
                         f"wired {'with' if reward_model is not None else 'without'} one: wiring comes from "
                         "conf/base/parameters_rl.yml, a profile may not change it")
    rm_version = reward_model.lineage.get("version") if reward_model is not None else None
    run = stages.start(stage, config.launch, policy.lineage.get("version"), [p["id"] for p in prompts],
                       dict(config.train_params), config.reward, rm_version)
    with placement.scope(config.device):  # the loop places the policy, the reward model follows it there
        history = stages.train_grpo(run, policy.model, policy.tokenizer, prompts, config.reward, config.train,
                                    list(config.diagnostics), reward_model)
    extra = {"reward_model": stages.parent_of(reward_model)} if reward_model is not None else {}
    lineage = stages.lineage(stage, policy, run, reward=config.reward, **extra, data={
        "prompts": len(prompts), "domains": dict(Counter(p["domain"] for p in prompts))})
    return Checkpoint(model=policy.model, tokenizer=policy.tokenizer, lineage=lineage), history


def plot_stage_curves(train_history: list[dict], config: RLStageConfig, stage: str):
    """The stage's per-step curves (reward, accuracy, length, ...) as one figure."""
    from nemotron_cascade.evaluation import report

    return report.plot_curves(train_history, f"{stage}: GRPO with reward {config.reward!r}")
