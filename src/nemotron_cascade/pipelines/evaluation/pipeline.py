"""Wiring of evaluation: one template namespaced per checkpoint, plus the matrix report."""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.pipelines.evaluation import harness_nodes
from nemotron_cascade.stages import label_of

# the checkpoints before RL: dataset prefix -> row label in the matrix (cascade order)
CHECKPOINTS = {c: label_of(c) for c in ("base", "sft.stage1", "sft.stage2")}


def evaluation_of(checkpoint: str) -> Pipeline:
    """Evaluate ``<checkpoint>.policy`` into ``evaluation.<checkpoint>.metrics``."""
    template = pipeline([
        # the project's verifiers, and the standard harness beside them when params:evaluation_harness enables it
        node(harness_nodes.evaluate_policy, inputs={"policy": "policy", "benchmark": "benchmark",
                                                    "evaluation": "params:evaluation",
                                                    "evaluation_harness": "params:evaluation_harness"},
             outputs=["metrics", "records"], name="evaluate"),
    ])
    return pipeline(template, namespace=f"evaluation.{checkpoint}",
                    inputs={"policy": f"{checkpoint}.policy", "benchmark": "benchmark"},
                    parameters={"params:evaluation": "params:evaluation",
                                "params:evaluation_harness": "params:evaluation_harness"})


def report_of(checkpoints: list[str]) -> Pipeline:
    """The matrix over the given checkpoints (rows in the given order)."""
    labels = [label_of(c) for c in checkpoints]
    return pipeline([
        node(lambda *m, _labels=labels: harness_nodes.report_matrix(_labels, *m),
             inputs=[f"evaluation.{c}.metrics" for c in checkpoints],
             outputs=["cascade_matrix", "cascade_matrix_md", "cascade_matrix_plot"],
             name="report_matrix", tags=["stage.report"]),
    ])


def create_pipeline(checkpoints: list[str] | None = None, **kwargs) -> Pipeline:
    """Evaluate every checkpoint and report the matrix."""
    checkpoints = checkpoints or list(CHECKPOINTS)
    return sum((evaluation_of(c) for c in checkpoints), Pipeline([])) + report_of(checkpoints)
