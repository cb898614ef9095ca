"""Which stage a node belongs to and where the stage stands in the cascade (MLflow's ordering)."""

import pytest
from kedro.pipeline import node

from nemotron_cascade.pipeline_registry import RL_STAGES
from nemotron_cascade.tracking.stages import cascade_order, position, stage_of, stage_positions


def _id(*x):
    return x[0]


@pytest.mark.parametrize("namespace, tags, stage, reason", [
    ("math_rl", [], "math_rl", "a stage's own namespace"),
    ("evaluation.math_rl", [], "math_rl", "a stage's evaluation shares the stage's run"),
    ("sft.stage2", [], "sft.stage2", "nested namespaces are kept whole"),
    (None, ["stage.report"], "report", "a node outside namespaces names its stage by tag"),
    (None, [], "data_curation", "everything else is data curation"),
])
def test_stage_of(namespace, tags, stage, reason):
    assert stage_of(node(_id, "a", "b", name="n", namespace=namespace, tags=tags)) == stage, reason


def test_the_order_is_the_matrix_order_with_the_rl_stages_from_the_registry():
    order = cascade_order()
    assert order[:3] == ["base", "sft.stage1", "sft.stage2"]
    assert order[3:] == list(RL_STAGES)  # not a second list: a new RL stage moves with the registry
    assert [position(s, order) for s in order] == [float(i) for i in range(1, len(order) + 1)]


def test_a_stage_off_the_chain_sits_half_a_step_after_the_latest_chain_stage_it_reads():
    order = ["base", "sft.stage1", "sft.stage2", "rlhf", "if_rl", "math_rl"]
    nodes = [
        node(_id, "raw", "tasks", name="curate"),  # reads no stage's data: 0
        node(_id, "sft.stage2.policy", "reward_model.model", name="train", namespace="reward_model"),
        node(_id, "if_rl.policy", "math_rl_control.policy", name="train", namespace="math_rl_control"),
        node(_id, ["evaluation.base.metrics", "evaluation.math_rl.metrics"], "matrix", name="report",
             tags=["stage.report"]),
        node(_id, ["sft.stage2.policy", "reward_model.model"], "rlhf.policy", name="train", namespace="rlhf"),
    ]
    assert stage_positions(nodes, order) == {"data_curation": 0.0, "reward_model": 3.5, "math_rl_control": 5.5,
                                             "report": 6.5, "rlhf": 4.0}
