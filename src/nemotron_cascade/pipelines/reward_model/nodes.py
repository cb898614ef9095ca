"""Node of the reward-model pipeline (a thin wrapper over ``training.reward_model``)."""

from __future__ import annotations

import logging
from collections import Counter

from nemotron_cascade import stages
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.pipelines.reward_model.config import RMStageConfig
from nemotron_cascade.training import placement

log = logging.getLogger(__name__)


def train_reward_model_node(policy: Checkpoint, preference_pairs: list[dict], config: RMStageConfig,
                            stage: str = "reward_model") -> tuple[Checkpoint, list[dict]]:
    """Train the Bradley–Terry reward model; the RM checkpoint and its training/validation curves.

    ``init: policy`` starts from the input checkpoint's body with a fresh scalar head, ``scratch``
    from a new tiny model of ``size`` sharing the policy's tokenizer. Local or launched, resumable
    under a fingerprint of the policy's version, the pairs and the parameters: :mod:`nemotron_cascade.stages`.
    """
    from nemotron_cascade import tracking
    from nemotron_cascade.lineage import content_digest
    from nemotron_cascade.models import count_parameters

    train_pairs, val_pairs, splits = split_pairs(preference_pairs)
    model = initial_model(policy, config)
    n_params = count_parameters(model)
    log.info("reward model (%s): %.2f M parameters, %s pairs", config.init, n_params / 1e6, dict(splits))
    tracking.log_metrics({"parameters": n_params, "train_pairs": splits["train"],
                          "validation_pairs": splits["validation"]}, prefix="data/")
    run = stages.start(stage, config.launch, policy.lineage.get("version"), config.init,
                       config.size if config.init == "scratch" else None,
                       content_digest([train_pairs, val_pairs]), dict(config.train_params))
    with placement.scope(config.device):  # the loop places the model there
        history = stages.train_reward_model(run, model, policy.tokenizer, train_pairs, val_pairs, config.train)
    final = {k: v for k, v in history[-1].items() if k.startswith("val_")}
    log.info("reward model validation: %s", {k: round(v, 3) for k, v in final.items()})
    lineage = stages.lineage(stage, policy, run, init=config.init, parameters=n_params, data=dict(splits),
                             validation=final)
    return Checkpoint(model=model, tokenizer=policy.tokenizer, lineage=lineage), history


def split_pairs(preference_pairs: list[dict]) -> tuple[list[dict], list[dict], Counter]:
    """The checked pairs' ``train`` and ``validation`` splits, and the count of each split."""
    from nemotron_cascade.data.preferences import SPLITS, check_pairs

    pairs = check_pairs(preference_pairs, "preference_pairs")
    splits = Counter(p.get("split") for p in pairs)
    unknown = sorted(set(splits) - set(SPLITS), key=str)
    if unknown:
        raise ValueError(f"preference_pairs: split must be one of {SPLITS}, found {unknown}")
    return [p for p in pairs if p["split"] == "train"], [p for p in pairs if p["split"] == "validation"], splits


def initial_model(policy: Checkpoint, config: RMStageConfig):
    """The model the RM starts from: the policy's body with a fresh head, or a new tiny model."""
    from nemotron_cascade.training.reward_model import reward_model_from_policy, reward_model_from_scratch

    if config.init == "policy":
        return reward_model_from_policy(policy.model, policy.tokenizer)
    return reward_model_from_scratch(policy.tokenizer, config.size or {})
