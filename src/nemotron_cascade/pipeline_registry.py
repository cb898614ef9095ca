"""Explicit pipeline registry (``find_pipelines()`` breaks on namespaced template pipelines).

The cascade's order is :data:`RL_STAGES`, the one line that orders stages: each RL stage reads the
checkpoint of the stage before it. Everything else about a stage is its parameters block in
``conf/base/parameters_rl.yml``, the wiring included: ``reward_model: true`` gives the stage the
reward model checkpoint, a ``localisation`` block localises its prompts with the policy first.
The registry reads that wiring from ``conf/base`` (profiles change sizes, not wiring).
"""

from __future__ import annotations

from pathlib import Path

from kedro.pipeline import Pipeline

from nemotron_cascade.pipelines import data_curation, evaluation, reward_model, rl_stage, sft

RL_STAGES = ("rlhf", "if_rl", "math_rl", "code_rl", "swe_rl")
REWARD_MODEL = "reward_model.model"
# the checkpoint the reward model starts from
REWARD_MODEL_INIT = "sft.stage2"
# control runs: same template and input as the stage, parameters under their own name
CONTROLS = {"math_rl_control": "math_rl"}


def conf_dir() -> Path:
    """The running project's configuration directory (the repository's when none is found)."""
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project

    project = find_kedro_project(Path.cwd()) or Path(__file__).resolve().parents[2]
    return project / settings.CONF_SOURCE


def stage_wiring(conf: Path | None = None, env: str = "base") -> dict[str, dict[str, bool]]:
    """Each RL stage's wiring from its parameters in ``<conf>/<env>/parameters*.yml``:
    ``{stage: {"reward_model": bool, "localise": bool}}``.

    The files are read as Kedro reads them (OmegaConf), without a config loader: a second
    ``OmegaConfigLoader`` would re-register the ``globals`` resolver of the running session's.
    """
    from omegaconf import OmegaConf

    files = sorted(((conf or conf_dir()) / env).glob("parameters*.yml"))
    return wiring_of(OmegaConf.to_container(OmegaConf.merge(*[OmegaConf.load(f) for f in files])) if files else {})


def wiring_of(params: dict) -> dict[str, dict[str, bool]]:
    """Each RL stage's wiring in a parameters mapping (see :func:`stage_wiring`)."""
    wiring = {}
    for stage in (*RL_STAGES, *CONTROLS):
        block = params.get(stage) or {}
        wiring[stage] = {"reward_model": block.get("reward_model") is True,
                         "localise": isinstance(block.get("localisation"), dict)}
    return wiring


class StagePipeline(Pipeline):
    """A stage's pipeline that can be run together with other stages (``--pipelines=math_rl,code_rl``).

    Every stage pipeline ends by redrawing the matrix with a ``report_matrix`` node over the
    checkpoints up to it, so two stages bring two nodes of that name, which ``Pipeline.__add__``
    refuses. When two nodes share a name and their outputs, and one reads a superset of the other's
    inputs, the superset one subsumes the other (the matrix over more checkpoints); anything else
    is still refused by Kedro. Kedro combines ``Pipeline([]) + pipelines[name]``; as a subclass
    with its own ``__radd__`` this class is asked first.
    """

    def __add__(self, other):
        if not isinstance(other, Pipeline):
            return NotImplemented
        by_name: dict[str, object] = {}
        for n in list(self.nodes) + list(other.nodes):
            kept = by_name.get(n.name)
            if kept is None or kept == n:
                by_name[n.name] = kept or n
            elif set(kept.outputs) == set(n.outputs) and set(n.inputs) >= set(kept.inputs):
                by_name[n.name] = n
            elif not (set(kept.outputs) == set(n.outputs) and set(kept.inputs) >= set(n.inputs)):
                return Pipeline(list(self.nodes)) + Pipeline(list(other.nodes))  # Kedro names the conflict
        return StagePipeline(list(by_name.values()))

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:
            return self
        if not isinstance(other, Pipeline):
            return NotImplemented
        return StagePipeline(list(other.nodes)) + self


def rl_pipeline(stage: str, input_checkpoint: str, wiring: dict[str, bool]) -> Pipeline:
    """The RL stage ``stage`` reading ``<input_checkpoint>.policy``, wired as its parameters say."""
    rm = REWARD_MODEL if wiring["reward_model"] else None
    return rl_stage.create_pipeline(stage, input_checkpoint, reward_model=rm, localise=wiring["localise"])


def register_pipelines() -> dict[str, Pipeline]:
    """Every stage by name; ``cascade`` (= ``__default__``) chains them with evaluation after each.

    A stage's pipeline trains it, evaluates its checkpoint on every domain and redraws the matrix
    over every checkpoint up to it, so ``kedro run --pipelines=math_rl`` shows forgetting too.
    """
    wiring = stage_wiring()
    checkpoints = list(evaluation.pipeline.CHECKPOINTS)  # base, sft.stage1, sft.stage2
    evals = {c: evaluation.evaluation_of(c) for c in checkpoints}
    sft_stages = sft.create_pipeline()
    pipes = {
        "data_curation": data_curation.create_pipeline(),
        "sft": StagePipeline(sft_stages + sum(evals.values(), Pipeline([])) + evaluation.report_of(checkpoints)),
        "reward_model": StagePipeline(reward_model.create_pipeline(REWARD_MODEL_INIT)),
    }
    trained = {}
    previous, inputs_of = "sft.stage2", {}
    for stage in RL_STAGES:
        trained[stage] = rl_pipeline(stage, previous, wiring[stage])
        evals[stage] = evaluation.evaluation_of(stage)
        inputs_of[stage] = previous
        checkpoints.append(stage)
        pipes[stage] = StagePipeline(trained[stage] + evals[stage] + evaluation.report_of(checkpoints))
        previous = stage
    for control, stage in CONTROLS.items():
        pipes[control] = rl_pipeline(control, inputs_of[stage], wiring[control]) + evaluation.evaluation_of(control)
    all_evals = sum(evals.values(), Pipeline([]))
    pipes["evaluation"] = all_evals + evaluation.report_of(checkpoints)
    pipes["cascade"] = (pipes["data_curation"] + sft_stages + pipes["reward_model"]
                        + sum(trained.values(), Pipeline([])) + pipes["evaluation"])
    pipes["__default__"] = pipes["cascade"]
    return pipes
