"""SWE reward: -1 for no patch, 1 for the gold fix, 0 for a no-op, else the judge's score."""

from __future__ import annotations

import math
import time

import pytest

from nemotron_cascade.rewards.swe import LexicalJudge, extract_patch, parse_patch, swe_reward

GOLD = """diff --git a/pkg/calc.py b/pkg/calc.py
index 1111111..2222222 100644
--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -10,4 +10,4 @@ def add(a, b):
 def divide(a, b):
     if b == 0:
-        return 0
+        raise ZeroDivisionError("b must not be zero")
     return a / b
"""


def _hunk(removed: str, added: str, path: str = "pkg/calc.py", header: str = "@@ -10,4 +10,4 @@") -> str:
    """A one-line change in the same context as GOLD."""
    return (
        f"--- a/{path}\n+++ b/{path}\n{header}\n def divide(a, b):\n     if b == 0:\n"
        f"-{removed}\n+{added}\n     return a / b\n"
    )


SHIFTED = GOLD.replace("@@ -10,4 +10,4 @@ def add(a, b):", "@@ -42,4 +45,4 @@")
NOISY = (
    GOLD.replace("index 1111111..2222222 100644", "index abcdef0..1234567")
    .replace("--- a/pkg/calc.py", "--- a/pkg/calc.py\t2024-01-01 10:00:00.000000000 +0000")
    .replace('zero")', 'zero")   ')  # trailing whitespace on the added line
)
NO_GIT_HEADER = GOLD.split("\n", 2)[2]
NEAR = _hunk("        return 0", '        raise ZeroDivisionError("b cannot be zero")')
SAME_FILE_UNRELATED = (
    "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,2 +1,2 @@\n-import os\n+import sys\n def add(a, b):\n"
)
OTHER_FILE = "--- a/docs/index.md\n+++ b/docs/index.md\n@@ -1,1 +1,1 @@\n-# Title\n+# Better title\n"
NOOP = _hunk("        return 0", "        return 0")
TRUNCATED = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -10,4 +10,4 @@\n def divide(a, b):\n"

# (predicted patch, expected reward or (low, high) bounds, reason)
CASES = [
    (GOLD, 1.0, "identical to gold"),
    (SHIFTED, 1.0, "same change at other @@ offsets"),
    (NOISY, 1.0, "index line, timestamps and trailing whitespace are noise"),
    (NO_GIT_HEADER, 1.0, "without the diff --git / index header"),
    ("I changed divide() so that it raises on zero.", -1.0, "prose parses to zero files"),
    ("", -1.0, "empty patch"),
    (TRUNCATED, -1.0, "hunk shorter than its header says"),
    ("--- a/pkg/calc.py\n+++ b/pkg/calc.py\n", -1.0, "file header without hunks"),
    (NOOP, 0.0, "every hunk changes nothing"),
    (NEAR, (0.8, 0.999), "near fix: same line, different message"),
    (SAME_FILE_UNRELATED, (0.0, 0.5), "unrelated change in the same file"),
    (OTHER_FILE, 0.0, "unrelated change in another file (missing files score 0)"),
    (GOLD + OTHER_FILE, (0.4, 0.6), "gold fix plus an unrelated file: half the union"),
]


@pytest.mark.parametrize(("predicted", "expected", "reason"), CASES, ids=[c[2] for c in CASES])
def test_swe_reward_table(predicted, expected, reason):
    reward = swe_reward(predicted, GOLD)
    if isinstance(expected, tuple):
        low, high = expected
        assert low <= reward <= high, f"{reason}: {reward}"
    else:
        assert reward == expected, reason


def test_normalisation_keeps_only_changed_lines_per_file():
    assert parse_patch(GOLD) == parse_patch(SHIFTED)
    change = parse_patch(GOLD)["pkg/calc.py"]
    assert change.removed == ("        return 0",)
    assert change.added == ('        raise ZeroDivisionError("b must not be zero")',)


def test_new_and_deleted_files_are_named_by_their_real_path():
    patch = (
        "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,1 @@\n+x = 1\n"
        "--- a/old.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-y = 2\n"
    )
    assert set(parse_patch(patch)) == {"new.py", "old.py"}


def test_40k_character_pair_scores_well_under_a_second():
    # difflib.SequenceMatcher takes about a minute on such a pair.
    lines = [f"    value_{i} = compute_something(value_{i - 1}, factor={i % 7})" for i in range(700)]
    gold = "--- a/big.py\n+++ b/big.py\n@@ -1,700 +1,700 @@\n" + "".join(
        f"-{line}\n" for line in lines
    ) + "".join(f"+{line.replace('compute', 'calc')}\n" for line in lines)
    predicted = gold.replace("factor=3", "factor=4")
    assert len(gold) > 40_000 and len(predicted) > 40_000
    start = time.perf_counter()
    reward = swe_reward(predicted, gold)
    elapsed = time.perf_counter() - start
    assert 0.9 < reward < 1.0
    assert elapsed < 1.0, f"took {elapsed:.2f} s"


@pytest.mark.parametrize(
    "gold",
    ["not a patch at all", "", TRUNCATED, NOOP],
    ids=["prose gold", "empty gold", "unparsable gold", "no-op gold"],
)
def test_bad_gold_patch_is_a_data_error(gold):
    with pytest.raises(ValueError, match="gold patch"):
        swe_reward(GOLD, gold)


class _FixedJudge:
    """A judge double that records its calls."""

    def __init__(self, score):
        self.score = score
        self.calls = 0

    def __call__(self, predicted_patch: str, gold_patch: str) -> float:
        self.calls += 1
        return self.score


@pytest.mark.parametrize(
    ("predicted", "score", "expected", "calls", "reason"),
    [
        (NEAR, 0.7, 0.7, 1, "judge decides the in-between cases"),
        (NEAR, 1.7, 1.0, 1, "out-of-range judge score is clipped"),
        (GOLD, 0.2, 1.0, 0, "identical patch never reaches the judge"),
        (NOOP, 0.9, 0.0, 0, "no-op never reaches the judge"),
        ("prose", 0.9, -1.0, 0, "unparsable never reaches the judge"),
    ],
    ids=["judged", "clipped", "identical", "no-op", "prose"],
)
def test_custom_judge(predicted, score, expected, calls, reason):
    judge = _FixedJudge(score)
    assert swe_reward(predicted, GOLD, judge=judge) == expected, reason
    assert judge.calls == calls, reason


def test_judge_returning_nan_is_an_error():
    with pytest.raises(ValueError, match="judge returned"):
        swe_reward(NEAR, GOLD, judge=_FixedJudge(math.nan))


def test_lexical_judge_is_symmetric_enough_and_bounded():
    judge = LexicalJudge()
    assert judge(GOLD, GOLD) == 1.0
    assert judge("prose", GOLD) == 0.0
    assert abs(judge(NEAR, GOLD) - judge(GOLD, NEAR)) < 1e-9


@pytest.mark.parametrize(
    ("response", "expected", "reason"),
    [
        (f"<think>plan</think>Here is the fix:\n```diff\n{GOLD}```\nDone.", GOLD, "diff fence in the final answer"),
        (f"```\n{GOLD}```", GOLD, "untagged fence"),
        (GOLD, GOLD.strip(), "bare patch: the whole final answer"),
        (f"<think>```diff\n{GOLD}```", None, "unclosed think: no patch"),
    ],
    ids=["diff fence", "plain fence", "bare", "unclosed think"],
)
def test_extract_patch(response, expected, reason):
    assert extract_patch(response) == expected, reason
