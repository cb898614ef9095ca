"""Stage pipelines combine: ``kedro run --pipelines=math_rl,code_rl`` draws one matrix over both."""

import pytest
from kedro.pipeline import Pipeline, node

from nemotron_cascade.pipeline_registry import StagePipeline, register_pipelines


@pytest.fixture(scope="module")
def pipes():
    return register_pipelines()


def _reports(pipe):
    return [n for n in pipe.nodes if n.name == "report_matrix"]


@pytest.mark.parametrize("names, last_metric, reason", [
    (["math_rl", "code_rl"], "evaluation.code_rl.metrics", "two RL stages: the later matrix covers both"),
    (["code_rl", "math_rl"], "evaluation.code_rl.metrics", "the order on the command line does not matter"),
    (["sft", "reward_model", "rlhf"], "evaluation.rlhf.metrics", "SFT, the RM and RLHF together"),
    (["cascade", "math_rl"], "evaluation.swe_rl.metrics", "a stage inside the cascade adds nothing"),
])
def test_stage_pipelines_combine_like_kedro_combines_them(pipes, names, last_metric, reason):
    combined = Pipeline([])
    for name in names:  # what KedroSession.run does with --pipelines=a,b
        combined += pipes[name]
    (report,) = _reports(combined)
    assert report.inputs[-1] == last_metric, reason
    expected = set().union(*({n.name for n in pipes[name].nodes} for name in names))
    assert {n.name for n in combined.nodes} == expected, reason


def test_a_real_name_conflict_is_still_refused():
    def f(x):
        return x

    a = StagePipeline([node(f, "a", "out", name="n")])
    b = StagePipeline([node(f, "b", "out", name="n")])  # neither reads a superset of the other
    with pytest.raises(ValueError, match="unique names"):
        Pipeline([]) + a + b
