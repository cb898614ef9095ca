"""Node of the reward-model pipeline (a thin wrapper over ``training.reward_model``)."""

from __future__ import annotations

import logging
from collections import Counter

from nemotron_cascade import tracking
from nemotron_cascade.data.preferences import SPLITS, check_pairs
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.lineage import content_digest
from nemotron_cascade.models import count_parameters
from nemotron_cascade.training import launch as launch_lib
from nemotron_cascade.training import resume
from nemotron_cascade.training.reward_model import (
    RMConfig, reward_model_from_policy, reward_model_from_scratch, train_reward_model)
from nemotron_cascade.training.sft import dataclass_from_params

log = logging.getLogger(__name__)


def train_reward_model_node(policy: Checkpoint, preference_pairs: list[dict], init: str, size: dict | None,
                            train: dict, resume_dir: str | None = None) -> tuple[Checkpoint, list[dict]]:
    """Train the Bradley–Terry reward model; the RM checkpoint and its training/validation curves.

    ``init``: ``policy`` (the input checkpoint's body, a fresh scalar head) or ``scratch`` (a new
    tiny model of ``size``, sharing the policy's tokenizer). ``train.launch`` with ``world_size > 1``
    trains in a launched multi-process job (:mod:`~nemotron_cascade.training.launch`). Either saves
    and resumes mid-stage state in ``resume_dir`` (a launched job's ranks must all see it), under a
    fingerprint of the policy's version, the pairs and the parameters; the state after the last step
    stays there until the run journal clears it once the RM checkpoint is saved.
    """
    pairs = check_pairs(preference_pairs, "preference_pairs")
    splits = Counter(p.get("split") for p in pairs)
    unknown = sorted(set(splits) - set(SPLITS), key=str)
    if unknown:
        raise ValueError(f"preference_pairs: split must be one of {SPLITS}, found {unknown}")
    train = dict(train)
    launch = launch_lib.config_from_params(train.pop("launch", None))
    cfg = dataclass_from_params(RMConfig, train)
    if init == "policy":
        model = reward_model_from_policy(policy.model, policy.tokenizer)
    elif init == "scratch":
        model = reward_model_from_scratch(policy.tokenizer, size or {})
    else:
        raise ValueError(f"params reward_model.init must be 'policy' or 'scratch', got {init!r}")
    n_params = count_parameters(model)
    log.info("reward model (%s): %.2f M parameters, %s pairs", init, n_params / 1e6, dict(splits))
    tracking.log_metrics({"parameters": n_params, "train_pairs": splits["train"],
                          "validation_pairs": splits["validation"]}, prefix="data/")
    train_pairs = [p for p in pairs if p["split"] == "train"]
    val_pairs = [p for p in pairs if p["split"] == "validation"]
    on_metrics = lambda m, s: tracking.log_metrics(m, s, "train/")  # noqa: E731
    fingerprint = resume.fingerprint(policy.lineage.get("version"), init, size if init == "scratch" else None,
                                     content_digest([train_pairs, val_pairs]), train)
    kw = {"resume_dir": resume_dir, "fingerprint": fingerprint, "keep_final_state": True}
    if launch.distributed:
        history = launch_lib.train_reward_model_distributed(model, policy.tokenizer, train_pairs, val_pairs, cfg,
                                                            launch, on_metrics, **kw)
    else:
        history = train_reward_model(model, policy.tokenizer, train_pairs, val_pairs, cfg, on_metrics=on_metrics,
                                     **kw)
    final = {k: v for k, v in history[-1].items() if k.startswith("val_")}
    log.info("reward model validation: %s", {k: round(v, 3) for k, v in final.items()})
    lineage = {"stage": "reward_model", "init": init, "parameters": n_params,
               "parent": {k: policy.lineage.get(k) for k in ("stage", "version", "path")},
               "data": dict(splits), "validation": final, "mlflow_run_id": tracking.current_run_id()}
    return Checkpoint(model=model, tokenizer=policy.tokenizer, lineage=lineage), history
