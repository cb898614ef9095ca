"""The stage-by-benchmark matrix (the paper's Figure 1 / intermediate-checkpoint table)."""

from __future__ import annotations

COLUMNS = ["math", "code", "science", "instruction_following", "tool_calling", "swe", "preference",
           "response_length"]


def matrix(labels: list[str], metrics: list[dict]):
    """One row per checkpoint in cascade order, one column per benchmark."""
    import pandas as pd

    if len(labels) != len(metrics):
        raise ValueError(f"{len(labels)} stage labels for {len(metrics)} metric sets")
    rows = [{"stage": label, **{c: m.get(c) for c in COLUMNS}} for label, m in zip(labels, metrics)]
    return pd.DataFrame(rows, columns=["stage", *COLUMNS])


def to_markdown(table) -> str:
    """A Markdown table with fractions shown to three decimals."""
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if v <= 1.0 else f"{v:.1f}"
    return "—" if v is None else str(v)


def plot(table):
    """Heatmap of the accuracy columns (response length is shown as a line beside it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    acc_cols = [c for c in COLUMNS if c != "response_length"]
    values = table[acc_cols].astype(float).to_numpy()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.6 * len(table) + 2.5),
                                  gridspec_kw={"width_ratios": [4, 1]})
    im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(acc_cols)), acc_cols, rotation=30, ha="right")
    ax.set_yticks(range(len(table)), table["stage"])
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title("benchmark accuracy after each stage")
    ax2.plot(table["response_length"].astype(float), range(len(table)), marker="o")
    ax2.set_yticks(range(len(table)), table["stage"])
    ax2.invert_yaxis()
    ax2.set_title("mean response tokens")
    fig.tight_layout()
    return fig


CURVES = ("reward", "accuracy", "response_length", "entropy", "zero_variance_groups", "gt_quality",
          "gt_reward_correlation", "repeated_sentences", "prompt_length")


def plot_curves(history: list[dict], title: str):
    """One small panel per training curve the history has (of :data:`CURVES`), against the step.

    For RLHF the RM score (``reward``) sits beside the world's ground-truth quality and its
    correlation with the score: reward hacking shows as the first rising while the others do not.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in CURVES if history and k in history[0]]
    cols = min(3, max(1, len(keys)))
    rows = -(-len(keys) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    steps = [h["step"] for h in history]
    for ax, key in zip(axes.flat, keys):
        ax.plot(steps, [h.get(key) for h in history], marker=".", linewidth=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
