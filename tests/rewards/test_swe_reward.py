"""SWE reward: -1 for no patch, 1 for the gold fix, 0 for a no-op, else the judge's score."""

from __future__ import annotations

import difflib
import math
import time

import pytest

from nemotron_cascade.rewards.swe import (
    FileChange,
    LexicalJudge,
    extract_patch,
    location_similarity,
    parse_patch,
    swe_reward,
)

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


# --------------------------------------------------------------------------------------------------
# Cases where a changed-lines-only comparison went wrong (issue #26), built from real file contents
UTILS = '''def page_count(total, size):
    if size <= 0:
        raise ValueError("size must be positive")
    return total // size


def page_offset(page, size):
    """Index of the first item on ``page`` (pages count from 1)."""
    return page * size
'''
UTILS_FIXED = UTILS.replace("return total // size", "return -(-total // size)")


def _diff(before: str, after: str, source: str = "utils.py", target: str = "utils.py", context: int = 3) -> str:
    """A git-style unified diff of one file; a rename gets git's ``rename from/to`` header."""
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{source}", f"b/{target}", n=context))
    rename = f"similarity index 90%\nrename from {source}\nrename to {target}\n" if source != target else ""
    return f"diff --git a/{source} b/{target}\n{rename}{body}"


PAGING_GOLD = _diff(UTILS, UTILS_FIXED)
PAGING_GOLD_MOVED = _diff(UTILS, UTILS_FIXED, target="paging.py")
REVERSED = _diff(UTILS_FIXED, UTILS)
WRONG_FUNCTION = _diff(UTILS, UTILS.replace("return page * size", "return (page - 1) * size"))
RIGHT_FIX_ONE_CONTEXT_LINE = _diff(UTILS, UTILS.replace("return total // size", "return (total + size - 1) // size"),
                                   context=1)
WRONG_FUNCTION_NO_CONTEXT = _diff(UTILS, UTILS.replace("return page * size", "return (page - 1) * size"), context=0)

# (predicted, gold, expected (low, high), reason); before the fix these scored 0.927, 0.741 and 0.0
PAGING_CASES = [
    (REVERSED, PAGING_GOLD, (0.0, 0.0), "exactly undoing the gold fix earns nothing for that file (was 0.93)"),
    (WRONG_FUNCTION, PAGING_GOLD, (0.2, 0.4),
     "a short edit to the wrong function of the right file: similar lines, different place (was 0.74; SWE-RL 0.23)"),
    (PAGING_GOLD, PAGING_GOLD_MOVED, (0.5, 0.5),
     "gold moves utils.py to paging.py and fixes it; the same fix in place gets the edit, not the move (was 0.0)"),
    (PAGING_GOLD_MOVED, PAGING_GOLD_MOVED, (1.0, 1.0), "the same move and fix"),
    ("diff --git a/utils.py b/paging.py\nsimilarity index 100%\nrename from utils.py\nrename to paging.py\n",
     PAGING_GOLD_MOVED, (0.5, 0.5), "a pure rename: the move without the fix"),
    (RIGHT_FIX_ONE_CONTEXT_LINE, PAGING_GOLD, (0.7, 0.95), "another right fix in the right place, with 1 context line"),
    (WRONG_FUNCTION_NO_CONTEXT, PAGING_GOLD, (0.7, 0.75),
     "-U0: no context, so the location is unknown and not weighed"),
]


@pytest.mark.parametrize(("predicted", "gold", "bounds", "reason"), PAGING_CASES, ids=[c[3][:40] for c in PAGING_CASES])
def test_swe_reward_where_and_which_way(predicted, gold, bounds, reason):
    low, high = bounds
    assert low <= swe_reward(predicted, gold) <= high, f"{reason}: {swe_reward(predicted, gold)}"


def test_files_are_keyed_by_their_path_before_the_patch():
    moved = parse_patch(PAGING_GOLD_MOVED)
    assert set(moved) == {"utils.py"}
    assert moved["utils.py"].renamed_to == "paging.py"
    assert moved != parse_patch(PAGING_GOLD), "the rename is part of what the patch does"
    assert moved["utils.py"].removed == parse_patch(PAGING_GOLD)["utils.py"].removed


def test_context_width_and_offsets_do_not_move_the_location():
    wide, narrow = parse_patch(PAGING_GOLD)["utils.py"], parse_patch(_diff(UTILS, UTILS_FIXED, context=1))["utils.py"]
    assert wide == narrow, "equality ignores context"
    assert location_similarity(narrow, wide) == location_similarity(wide, narrow) == 1.0
    wrong = parse_patch(WRONG_FUNCTION)["utils.py"]
    assert location_similarity(wrong, wide) < 0.6


def test_reversal_is_only_the_exact_inverse():
    gold = FileChange(("a",), ("b",))
    assert FileChange(("b",), ("a",)).reverses(gold)
    assert not FileChange(("b",), ("c",)).reverses(gold)
    assert not FileChange(("a",), ("a",)).reverses(FileChange(("a",), ("a",))), "a no-op reverses nothing"


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
