"""The tasks of a launched job (:mod:`~nemotron_cascade.training.launch`): what the parent writes to
the work dir for each, and what every rank reads back, rebuilds and trains.

A task is three functions (:class:`Task`): ``write_data(data, wd)`` in the parent; then, on every
rank, ``make_config(params)`` (before any model loads, so a bad config fails fast) and
``run(wd, model, tokenizer, cfg, on_metrics, resume) -> history``. What crosses the process
boundary is data in the work dir or a name the ranks import; never a pickled object or closure.
``resume`` is the payload's mid-stage resume block (``dir``, ``fingerprint``,
``keep_final_state``) or ``None``; every task passes it to its loop (DeepSpeed's sharded
checkpoints, :func:`~nemotron_cascade.training.resume.save_sharded`).

* ``sft`` — the packed blocks as int32 tensors (``data.pt``) → :func:`~nemotron_cascade.training.sft.train_sft`.
* ``reward_model`` — the preference pairs (``data.json``) →
  :func:`~nemotron_cascade.training.reward_model.train_reward_model`.
* ``grpo`` — ``data.json``: the prompt rows, the reward's registry name, the diagnostics' names, the
  prompt renderer's dotted path (``module:name``) and, for tests, a rollout-generator factory's;
  ``reward_model/``: the reward model (``save_pretrained``) when the reward is built around one.
  Every rank rebuilds the reward with :func:`~nemotron_cascade.rewards.registry.make_reward` and
  runs :func:`~nemotron_cascade.rl.trainer.train_grpo`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_JSON, DATA_PT, RM_DIR = "data.json", "data.pt", "reward_model"


# ------------------------------------------------------------------------------------------ models
def save_model(model, tokenizer, path: Path) -> dict:
    """``save_pretrained`` of ``model`` and ``tokenizer`` into ``path``; the spec :func:`load_model` reads."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return {"model_class": type(model).__name__, "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "attn_implementation": getattr(model.config, "_attn_implementation", None)}


def load_model(path: Path, spec: dict):
    """The model :func:`save_model` wrote: its transformers class, dtype and attention implementation."""
    import torch
    import transformers

    cls = getattr(transformers, spec["model_class"])
    kw = {"attn_implementation": spec["attn_implementation"]} if spec.get("attn_implementation") else {}
    return cls.from_pretrained(path, dtype=getattr(torch, spec["dtype"]), **kw)


# ------------------------------------------------------------------------------------------ names
def import_object(path: str):
    """The object named ``module:qualname`` (``nemotron_cascade.data.world:render_prompt``)."""
    module, sep, name = path.partition(":")
    if not (sep and module and name):
        raise ValueError(f"expected 'module:name', got {path!r}")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def dotted_path(obj, what: str) -> str:
    """``module:qualname`` of a callable the ranks can import (``obj`` itself, or such a string),
    checked here, in the parent: a lambda, a closure or a bound method has no such name."""
    path = obj if isinstance(obj, str) else f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"
    try:
        if path.startswith("__main__:"):  # the ranks' __main__ is the worker, not this script
            raise ImportError("a rank cannot import this process's __main__")
        found = import_object(path)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"{what} must be importable by name ('module:name': the ranks rebuild it), "
                         f"got {obj!r} ({type(e).__name__}: {e})") from None
    if not callable(found) or (not isinstance(obj, str) and found is not obj):
        raise ValueError(f"{what} must be a callable importable by name ('module:name': the ranks rebuild it), "
                         f"got {obj!r}")
    return path


# ------------------------------------------------------------------------------------------ sft
def _write_blocks(blocks, wd: Path) -> None:
    import torch

    if not blocks:
        raise ValueError("no training blocks to launch with")
    cols = {k: torch.tensor([getattr(b, k) for b in blocks], dtype=torch.int32)
            for k in ("input_ids", "labels", "position_ids")}
    torch.save({**cols, "n_real": torch.tensor([b.n_real for b in blocks], dtype=torch.int64)}, wd / DATA_PT)


def _read_blocks(wd: Path):
    import torch

    from nemotron_cascade.training.packing import Block

    d = torch.load(wd / DATA_PT, weights_only=True)
    return [Block(i, lab, p, n) for i, lab, p, n in zip(d["input_ids"].tolist(), d["labels"].tolist(),
                                                        d["position_ids"].tolist(), d["n_real"].tolist())]


def resume_kwargs(resume: dict | None) -> dict:
    """A loop's ``resume_dir``, ``fingerprint`` and ``keep_final_state`` from a payload's resume block."""
    if not resume:
        return {}
    return {"resume_dir": resume["dir"], "fingerprint": resume["fingerprint"],
            "keep_final_state": resume["keep_final_state"]}


def _run_sft(wd: Path, model, tokenizer, cfg, on_metrics, resume=None):
    from nemotron_cascade.training import sft

    return sft.train_sft(model, _read_blocks(wd), cfg, on_metrics=on_metrics, **resume_kwargs(resume))


# ------------------------------------------------------------------------------------------ reward model
def _write_pairs(data: dict, wd: Path) -> None:
    (wd / DATA_JSON).write_text(json.dumps({"train": list(data["train"]), "validation": list(data["validation"])}))


def _run_reward_model(wd: Path, model, tokenizer, cfg, on_metrics, resume=None):
    from nemotron_cascade.training import reward_model as rm

    data = json.loads((wd / DATA_JSON).read_text())
    return rm.train_reward_model(model, tokenizer, data["train"], data["validation"], cfg, on_metrics=on_metrics,
                                 **resume_kwargs(resume))


# ------------------------------------------------------------------------------------------ grpo
@dataclass
class GRPOJob:
    """What a rank rebuilds from a ``grpo`` work dir: :func:`~nemotron_cascade.rl.trainer.train_grpo`'s inputs."""

    rows: list[dict]
    reward: str                                 # the registry name (also train_grpo's reward_name)
    reward_fn: Callable
    render_prompt: Callable[..., str]
    diagnostics: Callable | None
    make_generator: Callable | None             # (cfg, model, tokenizer) -> generator; None: cfg.rollout_engine's


def write_grpo(data: dict, wd: Path) -> None:
    """``data``: ``rows``, ``reward`` (a registry name), ``reward_model`` (a checkpoint or None),
    ``diagnostics`` (names or None), ``render_prompt`` and ``generator`` (dotted paths; the
    generator None) into ``wd``."""
    rm = data.get("reward_model")
    spec = {"rows": list(data["rows"]), "reward": data["reward"], "diagnostics": list(data.get("diagnostics") or []),
            "render_prompt": data["render_prompt"], "generator": data.get("generator"),
            "reward_model": None if rm is None else save_model(rm.model, rm.tokenizer, wd / RM_DIR)}
    try:
        text = json.dumps(spec)
    except (TypeError, ValueError) as e:
        raise ValueError(f"a launched GRPO job sends its prompt rows as JSON: {e}") from None
    (wd / DATA_JSON).write_text(text)


def read_grpo(wd: Path, cfg) -> GRPOJob:
    """A rank's :class:`GRPOJob` from ``wd``: the reward rebuilt by name (around the reward model
    ``wd`` holds, if any), the renderer and generator factory imported by name."""
    from nemotron_cascade.rewards.registry import make_reward
    from nemotron_cascade.rl.diagnostics import combine

    spec = json.loads((wd / DATA_JSON).read_text())
    rm = None
    if spec["reward_model"] is not None:
        from nemotron_cascade.datasets.checkpoint import Checkpoint
        from nemotron_cascade.models import load_tokenizer

        rm = Checkpoint(model=load_model(wd / RM_DIR, spec["reward_model"]),
                        tokenizer=load_tokenizer(str(wd / RM_DIR)))
    return GRPOJob(rows=spec["rows"], reward=spec["reward"],
                   reward_fn=make_reward(spec["reward"], reward_model=rm, group_size=cfg.group_size),
                   render_prompt=import_object(spec["render_prompt"]), diagnostics=combine(spec["diagnostics"]),
                   make_generator=import_object(spec["generator"]) if spec["generator"] else None)


def _run_grpo(wd: Path, model, tokenizer, cfg, on_metrics, resume=None):
    from nemotron_cascade.rl.trainer import train_grpo

    job = read_grpo(wd, cfg)
    generator = job.make_generator(cfg, model, tokenizer) if job.make_generator else None
    return train_grpo(model, tokenizer, job.rows, job.reward_fn, cfg, generator, job.render_prompt,
                      on_metrics=on_metrics, diagnostics=job.diagnostics, reward_name=job.reward,
                      **resume_kwargs(resume))


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Task:
    write_data: Callable[[Any, Path], None]  # parent: payload["data"] into the work dir
    make_config: Callable[[dict], Any]       # rank: the loop's config from payload["config"], before any model loads
    run: Callable[..., list[dict]]           # rank: (wd, model, tokenizer, config, on_metrics, resume) -> history


def _config(dotted: str) -> Callable[[dict], Any]:
    """The rank's config builder: the dataclass at ``dotted`` from the payload's parameters."""
    def make(params: dict):
        from nemotron_cascade.config import config_from_params

        return config_from_params(import_object(dotted), params)
    return make


TASKS = {"sft": Task(_write_blocks, _config("nemotron_cascade.training.sft:SFTConfig"), _run_sft),
         "reward_model": Task(_write_pairs, _config("nemotron_cascade.training.reward_model:RMConfig"),
                              _run_reward_model),
         "grpo": Task(write_grpo, _config("nemotron_cascade.rl.config:GRPOConfig"), _run_grpo)}
