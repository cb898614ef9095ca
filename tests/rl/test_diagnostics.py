"""RL diagnostics against values worked by hand."""

import math

import pytest

from nemotron_cascade.data import world
from nemotron_cascade.rl import diagnostics


def test_pearson_by_hand():
    assert diagnostics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert diagnostics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x = [0, 1, 2, 3], y = [0, 1, 1, 0]: cov sum = (-1.5)(-.5)+(-.5)(.5)+(.5)(.5)+(1.5)(-.5) = 0
    assert diagnostics.pearson([0, 1, 2, 3], [0, 1, 1, 0]) == pytest.approx(0.0)
    assert math.isnan(diagnostics.pearson([1, 1], [0, 1]))  # constant side
    assert math.isnan(diagnostics.pearson([1], [1]))


@pytest.mark.parametrize("text, expected, reason", [
    ("A b c. A b c. D e f.", (1 / 3, 1 - 6 / 7), "one of three sentences repeats; trigrams: 7, 6 distinct"),
    ("One two three four.", (0.0, 0.0), "nothing repeats"),
    ("<think>x. x. x.</think>\nFine words here.", (0.0, 0.0), "the thinking trace is not judged"),
    ("", (0.0, 0.0), "empty answer"),
])
def test_repetition_of(text, expected, reason):
    assert diagnostics.repetition_of(text) == pytest.approx(expected), reason


def test_ground_truth_quality_reads_general_rows_only():
    row = world.generate_tasks("general", "rl", 1, 0)[0]
    other = {"domain": "math", "prompt": "1+1"}
    facts = row["chosen"]
    out = diagnostics.ground_truth_quality([facts, facts + " " + facts.split(".")[0] + ".", "2"],
                                           [row, row, other], [2.0, 1.0, 5.0])
    # qualities 1.0 and 2/3 (one fact repeated); the higher reward goes with the higher quality
    assert out["gt_quality"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-3)
    assert out["gt_reward_correlation"] == pytest.approx(1.0)
    assert diagnostics.ground_truth_quality(["2"], [other], [1.0]) == {}


def test_combine_runs_every_named_diagnostic_and_rejects_unknown_names():
    run = diagnostics.combine(["repetition", "ground_truth_quality"])
    assert set(run(["a b c d."], [{"domain": "code"}], [0.0])) == {"repeated_sentences", "repeated_trigrams"}
    assert diagnostics.combine([]) is None
    with pytest.raises(KeyError, match="unknown diagnostics"):
        diagnostics.combine(["reward_hacking_detector"])


def test_ground_truth_quality_skips_rows_of_real_sources():
    """A Llama-Nemotron chat row's topic ("chat") is no world topic: the world cannot judge its answers."""
    from nemotron_cascade.rl.diagnostics import ground_truth_quality

    real = {"domain": "general", "topic": "chat", "source": "llama_nemotron_chat"}
    assert ground_truth_quality(["Hello there."], [real], [0.3]) == {}
