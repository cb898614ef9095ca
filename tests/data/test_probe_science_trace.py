"""The science-trace probe (benchmarks/probe_science_trace.py) renders each style from the same task."""

import importlib.util
import re
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "probe_science_trace", Path(__file__).parents[2] / "benchmarks" / "probe_science_trace.py")
probe = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(probe)
STYLES = ["plain", "nounit", "glued", "letterfirst", "copyopts", "equal", "check"]


@pytest.mark.parametrize("style", STYLES)
def test_every_style_asks_the_same_question_and_ends_with_the_right_letter(style):
    for plain, check in probe._rows("bench", 40, 0):
        prefix, completion = probe.render(plain, check, style)
        question, work = plain["prompt"].split("\nOptions:")[0], plain["trace"].splitlines()[:2]
        assert prefix.startswith(question + "\nOptions:\n") and prefix.endswith("\n".join(work) + "\n")
        assert completion.endswith(f"\nThe answer is {plain['answer']}.")
        options = prefix.split("Options:\n")[1].split("\nAnswer")[0].splitlines()
        assert len(options) == 4 and all(c.split()[0] in o for c, o in zip(plain["choices"], options))


def test_check_style_is_the_worlds_check_trace_and_equal_marks_only_the_answer():
    for plain, check in probe._rows("bench", 40, 0):
        prefix, completion = probe.render(plain, check, "check")
        assert prefix.split("Answer with the letter.\n")[0] == check["prompt"].split("Answer with the letter.")[0]
        assert completion.splitlines()[:-1] == check["trace"].splitlines()[2:]
        equal = probe.render(plain, check, "equal")[1].splitlines()[:-1]
        assert [line.endswith("same") for line in equal] == [False] * (len(equal) - 1) + [True]
        assert re.match(rf"\({plain['answer']}\) ", equal[-1])


@pytest.mark.parametrize("split", ["sft", "rl", "bench"])
def test_plain_style_is_the_same_problem_ending_with_its_value_and_letter(split):
    """The retired plain style, rendered by the probe from the world's task: the same problem, answer
    and options, the formula and the worked value as the check trace, and the value and letter at
    the end (moved from tests/data/test_world.py with the style)."""
    rows = probe._rows(split, 200, 0)
    assert [p["id"] for p, _ in rows] == [c["id"] for _, c in rows]  # the same problems in both styles
    for p, c in rows:
        assert (c["answer"], c["choices"]) == (p["answer"], p["choices"])
        assert c["trace"].splitlines()[:2] == p["trace"].splitlines()[:2]  # formula and worked value as before
        assert p["trace"].endswith("is the answer.") and " (A)\n" in p["prompt"]
        assert p["trace"].endswith(f"{p['choices'][probe.L.index(p['answer'])]} ({p['answer']}) is the answer.")


def test_unknown_style_is_named():
    plain, check = probe._rows("bench", 1, 0)[0]
    with pytest.raises(ValueError, match="fancy"):
        probe.render(plain, check, "fancy")
