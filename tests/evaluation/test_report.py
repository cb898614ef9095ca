"""The matrix report and the per-stage training-curve figure."""

import pytest

from nemotron_cascade.evaluation import report


def test_matrix_keeps_cascade_order_and_every_benchmark_column():
    table = report.matrix(["sft", "rlhf"], [{"math": 0.5, "preference": 0.7}, {"math": 0.6, "preference": 0.9}])
    assert list(table["stage"]) == ["sft", "rlhf"]
    assert list(table.columns) == ["stage", *report.COLUMNS]
    assert "| rlhf | 0.600 |" in report.to_markdown(table)
    with pytest.raises(ValueError, match="2 stage labels for 1 metric sets"):
        report.matrix(["sft", "rlhf"], [{}])


def test_curves_plot_one_panel_per_curve_the_history_has():
    history = [{"step": s, "reward": s / 10, "gt_quality": 0.5, "response_length": 40 - s, "loss": 1.0}
               for s in range(1, 6)]
    fig = report.plot_curves(history, "rlhf")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["reward", "response_length", "gt_quality"]  # "loss" is not a curve we draw
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3, 4, 5]
