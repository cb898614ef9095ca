"""The one service behind every training node: local or launched training, resume key, lineage.

A training node turns its inputs into what a trainer takes and calls this module, which writes
once what every stage shares:

* :func:`start` fingerprints the run (:func:`~nemotron_cascade.training.resume.fingerprint` of
  what the node names: the parent checkpoint's version, the data, the parameters as written) and
  derives its resume directory, ``data/06_models/_resume/<stage>/<key>``, from the stage's
  namespace and the fingerprint's first :data:`KEY_CHARS` characters: two runs of one stage with
  different parameters, data or parent never share a resume directory;
* :func:`train_sft`, :func:`train_reward_model` and :func:`train_grpo` train in this process, or
  launch a multi-process job when the ``launch`` block asks for ``world_size > 1``
  (:mod:`~nemotron_cascade.training.launch`); both keep the state after the last step in the
  resume directory and stream the metrics to the stage's MLflow run;
* :func:`lineage` is the checkpoint's record: its stage, parent, data, MLflow run and resume
  directory (the run journal clears that directory once the checkpoint is saved).

Stage names: a stage is named by its namespace (``sft.stage2``, ``math_rl``); :func:`label_of`
gives its name in the matrix and in its checkpoint's lineage (``sft.stage2`` is ``sft``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nemotron_cascade import config
from nemotron_cascade.training.launch import LaunchConfig

RESUME_ROOT = "data/06_models/_resume"
KEY_CHARS = 8
# a stage's name in the matrix and its lineage, where that is not its namespace
LABELS = {"sft.stage1": "sft_stage1", "sft.stage2": "sft"}
PARENT_KEYS = ("stage", "version", "path")


def label_of(stage: str) -> str:
    """The stage's row label in the matrix and its checkpoint's ``lineage["stage"]``."""
    return LABELS.get(stage, stage)


@dataclass(frozen=True)
class StageRun:
    """One training run of a stage: its namespace, resume fingerprint and directory, and launch."""

    stage: str
    fingerprint: str
    resume_dir: str
    launch: LaunchConfig

    def metrics(self, prefix: str = "train/") -> Callable[[dict, int], None]:
        """The callback streaming a trainer's step metrics to the stage's MLflow run."""
        from nemotron_cascade import tracking

        return lambda m, s: tracking.log_metrics(m, s, prefix)

    @property
    def resume(self) -> dict:
        """The keyword arguments of resume every trainer takes."""
        return {"resume_dir": self.resume_dir, "fingerprint": self.fingerprint, "keep_final_state": True}


def start(stage: str, launch: LaunchConfig, *parts) -> StageRun:
    """The run of ``stage`` whose resume state is keyed by ``parts`` (JSON-serialisable)."""
    from nemotron_cascade.training import resume

    fingerprint = resume.fingerprint(*parts)
    return StageRun(stage, fingerprint, f"{RESUME_ROOT}/{stage}/{fingerprint[:KEY_CHARS]}", launch)


def split_train_block(block: Mapping[str, Any] | None, cls: type, where: str,
                      extra: tuple[str, ...] = ()) -> tuple[Any, LaunchConfig, dict, dict]:
    """A ``train`` block as written → (``cls`` config, its launch, the block without ``launch``, extras).

    The block holds ``cls``'s fields, an optional ``launch`` (:class:`LaunchConfig`) and the
    ``extra`` keys the node itself uses (SFT's ``block_size``). The block without ``launch`` is what
    the resume fingerprint hashes, as written (the same key as before configs were typed). A
    ``cls`` instance stands for the block of all its fields.
    """
    from nemotron_cascade.training import launch as launch_lib

    if isinstance(block, cls):
        block = {f.name: getattr(block, f.name) for f in dataclasses.fields(cls)}
    written = {k: v for k, v in dict(block or {}).items() if k != "launch"}
    missing = [k for k in extra if k not in written]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    extras = {k: written[k] for k in extra}
    cfg = config.config_from_params(cls, {k: v for k, v in written.items() if k not in extra}, where)
    return cfg, launch_lib.launch_config((block or {}).get("launch")), written, extras


def train_sft(run: StageRun, model, tokenizer, blocks, cfg, prefix: str = "train/") -> list[dict]:
    """SFT (or pretraining) of ``model`` on packed ``blocks``, in this process or launched."""
    from nemotron_cascade.training import launch as launch_lib
    from nemotron_cascade.training import sft

    if run.launch.distributed:
        return launch_lib.train_sft_distributed(model, tokenizer, blocks, cfg, run.launch, run.metrics(prefix),
                                                **run.resume)
    return sft.train_sft(model, blocks, cfg, on_metrics=run.metrics(prefix), **run.resume)


def train_reward_model(run: StageRun, model, tokenizer, train_pairs, val_pairs, cfg) -> list[dict]:
    """Bradley–Terry training of ``model``, in this process or launched."""
    from nemotron_cascade.training import launch as launch_lib
    from nemotron_cascade.training import reward_model

    if run.launch.distributed:
        return launch_lib.train_reward_model_distributed(model, tokenizer, train_pairs, val_pairs, cfg, run.launch,
                                                         run.metrics(), **run.resume)
    return reward_model.train_reward_model(model, tokenizer, train_pairs, val_pairs, cfg, on_metrics=run.metrics(),
                                           **run.resume)


def train_grpo(run: StageRun, model, tokenizer, prompts, reward: str, cfg, diagnostics: list[str],
               reward_model=None) -> list[dict]:
    """GRPO of ``model`` on ``prompts`` with the reward named ``reward``, in this process or launched
    (the ranks rebuild the reward and diagnostics by name)."""
    from nemotron_cascade.data import world
    from nemotron_cascade.rewards.registry import make_reward
    from nemotron_cascade.rl.diagnostics import combine
    from nemotron_cascade.rl.trainer import train_grpo as grpo
    from nemotron_cascade.training import launch as launch_lib

    if run.launch.distributed:
        return launch_lib.train_grpo_distributed(
            model, tokenizer, prompts, reward, cfg, run.launch, run.metrics(), render_prompt=world.render_prompt,
            reward_model=reward_model, diagnostics=diagnostics, **run.resume)
    reward_fn = make_reward(reward, reward_model=reward_model, group_size=cfg.group_size)
    return grpo(model, tokenizer, prompts, reward_fn, cfg, None, world.render_prompt,  # generator: cfg's engine
                on_metrics=run.metrics(), diagnostics=combine(diagnostics), reward_name=reward, **run.resume)


def parent_of(checkpoint) -> dict:
    """The reference a lineage keeps to a checkpoint it read: its stage, version and path."""
    return {k: checkpoint.lineage.get(k) for k in PARENT_KEYS}


def lineage(stage: str, parent=None, run: StageRun | None = None, **fields) -> dict:
    """A checkpoint's lineage: its stage label, its parent's reference, ``fields`` (data, reward,
    ...), the MLflow run that trained it and, after training, the resume directory to clear."""
    from nemotron_cascade import tracking

    record = {"stage": label_of(stage)}
    if parent is not None:
        record["parent"] = parent_of(parent)
    record.update(fields)
    record["mlflow_run_id"] = tracking.current_run_id()
    if run is not None:
        record["resume_dir"] = run.resume_dir
    return record


def for_stage(func: Callable, stage: str) -> Callable:
    """``func`` with its ``stage`` argument bound, for a node of the stage's namespaced pipeline.

    Unlike a ``functools.partial``, the result is a function whose signature and type hints are
    ``func``'s without ``stage``: Kedro binds the node's inputs to it and validates its typed
    ``params:`` inputs before any node runs.
    """
    def bound(*args, **kwargs):
        return func(*args, stage=stage, **kwargs)

    sig = inspect.signature(func)
    bound.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name != "stage"])
    bound.__annotations__ = {k: v for k, v in func.__annotations__.items() if k != "stage"}
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(bound, attr, getattr(func, attr))
    bound.__wrapped__ = func  # typing.get_type_hints resolves the hints in func's module
    return bound
