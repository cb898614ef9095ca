"""Reward registry: names, the batch contract fn(responses, rows) -> list[float], loud bad rows."""

from __future__ import annotations

import pytest

from nemotron_cascade.rewards import registry
from nemotron_cascade.rewards.registry import get_reward, register, reward_names

PATCH = "--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,1 @@\n-a = 1\n+a = 2\n"


def test_every_domain_is_registered():
    assert {"math", "science", "instruction_following", "tool_calling", "swe", "code"} <= set(reward_names())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as raised:
        get_reward("poetry")
    assert "poetry" in str(raised.value) and "math" in str(raised.value)


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        register("math")(lambda responses, rows: [])


# (reward name, responses, rows, expected rewards, reason)
BATCH_CASES = [
    ("math", ["\\boxed{4}", "\\boxed{5}"], [{"answer": "4"}, {"answer": 4}], [1.0, 0.0],
     "answer column, ints accepted"),
    ("science", ["\\boxed{B}", "Answer: C"], [{"answer": "B"}, {"answer": "D"}], [1.0, 0.0], "letter answers"),
    (
        "instruction_following",
        ["no commas here", "a, b"],
        [{"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}] * 2,
        [1.0, 0.0],
        "IFEval columns",
    ),
    (
        "tool_calling",
        ['<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>', "no call"],
        [{"expected_calls": [{"name": "f", "arguments": {"x": 1}}]}] * 2,
        [1.0, 0.0],
        "expected calls column",
    ),
    (
        "swe",
        [f"```diff\n{PATCH}```", "I would change a to 2.", "<think>unclosed"],
        [{"gold_patch": PATCH}] * 3,
        [1.0, -1.0, -1.0],
        "patch read from the response; prose is -1; unclosed think is -1 (no usable patch)",
    ),
]


@pytest.mark.parametrize(("name", "responses", "rows", "expected", "reason"), BATCH_CASES,
                         ids=[c[4] for c in BATCH_CASES])
def test_batch_contract(name, responses, rows, expected, reason):
    rewards = get_reward(name)(responses, rows)
    assert rewards == expected, reason
    assert all(isinstance(r, float) for r in rewards)


@pytest.mark.parametrize(
    ("name", "rows", "field"),
    [
        ("math", [{"answer": "1"}, {"solution": "1"}], "answer"),
        ("instruction_following",
         [{"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}, {"instruction_id_list": []}], "kwargs"),
        ("swe", [{"gold_patch": PATCH}, {}], "gold_patch"),
        ("code", [{"tests": []}, {"input": "1"}], "tests"),
    ],
    ids=["math answer", "IF kwargs", "swe gold patch", "code tests"],
)
def test_missing_field_names_reward_row_and_field(name, rows, field):
    with pytest.raises(KeyError) as raised:
        get_reward(name)(["x"] * len(rows), rows)
    message = str(raised.value)
    assert repr(name) in message and "row 1" in message and repr(field) in message


def test_responses_and_rows_must_pair_up():
    with pytest.raises(ValueError, match="2 responses but 1 rows"):
        get_reward("science")(["a", "b"], [{"answer": "A"}])


def test_registered_functions_are_plain_callables():
    assert registry.get_reward("math") is registry.math_batch
