"""Which cascade stage a node belongs to, and where that stage stands in the cascade.

A stage is a namespace: a checkpoint's training and its evaluation (``evaluation.<stage>``) share
one. Positions order the MLflow stage runs as the matrix orders its rows: the checkpoints evaluated
before RL (``base``, ``sft.stage1``, ``sft.stage2``) are 1, 2, 3 and the RL stages follow in
``pipeline_registry.RL_STAGES`` order (4 … 8). A stage off that chain sits half a step after the
latest chain stage whose data it reads (the reward model, trained from ``sft.stage2``: 3.5; the
matrix report: after the last stage it reports), one that reads none of it is 0 (data curation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DEFAULT_STAGE = "data_curation"


def stage_of(node) -> str:
    """The cascade stage a node belongs to: its namespace without ``evaluation.``, its
    ``stage.<name>`` tag, or ``data_curation``."""
    ns = node.namespace or ""
    if ns.startswith("evaluation."):
        ns = ns[len("evaluation."):]
    if ns:
        return ns
    tagged = [t.split(".", 1)[1] for t in sorted(node.tags) if t.startswith("stage.")]
    return tagged[0] if tagged else DEFAULT_STAGE


def cascade_order() -> list[str]:
    """The stages of the cascade in order: the checkpoints evaluated before RL, then the RL stages."""
    from nemotron_cascade.pipeline_registry import RL_STAGES
    from nemotron_cascade.pipelines.evaluation.pipeline import CHECKPOINTS

    return [*CHECKPOINTS, *RL_STAGES]


def _stage_of_dataset(name: str, order: Sequence[str]) -> str | None:
    """The chain stage a dataset name belongs to (``if_rl.policy``, ``evaluation.if_rl.metrics``)."""
    name = name[len("evaluation."):] if name.startswith("evaluation.") else name
    return max((s for s in order if name.startswith(f"{s}.")), key=len, default=None)


def position(stage: str, order: Sequence[str], inputs: Iterable[str] = ()) -> float:
    """The 1-based place of ``stage`` in ``order``; off the chain, half a step after the latest
    chain stage among the datasets it reads (``inputs``), or 0 when it reads none."""
    if stage in order:
        return float(order.index(stage) + 1)
    upstream = [order.index(s) + 1 for s in (_stage_of_dataset(n, order) for n in inputs) if s is not None]
    return max(upstream) + 0.5 if upstream else 0.0


def stage_positions(nodes: Iterable, order: Sequence[str]) -> dict[str, float]:
    """The position of every stage that ``nodes`` belong to, from the datasets each stage reads."""
    inputs: dict[str, set[str]] = {}
    for n in nodes:
        inputs.setdefault(stage_of(n), set()).update(n.inputs)
    return {stage: position(stage, order, names) for stage, names in inputs.items()}
