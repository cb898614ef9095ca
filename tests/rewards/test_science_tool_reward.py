"""Science (multiple choice) and tool-calling rewards."""

from __future__ import annotations

import pytest

from nemotron_cascade.rewards.science import science_reward
from nemotron_cascade.rewards.tool_calling import parse_tool_calls, tool_call_reward

# (response, gold letter, expected reward, reason)
SCIENCE_CASES = [
    ("<think>It must be B.</think>\\boxed{B}", "B", 1.0, "boxed letter"),
    ("\\boxed{(c)}", "C", 1.0, "parenthesised lower-case letter"),
    ("\\boxed{\\text{D}}", "d", 1.0, "letter inside text, gold lower case"),
    ("\\boxed{B. Paris}", "B", 1.0, "letter followed by the option text"),
    ("\\boxed{A}", "B", 0.0, "wrong letter"),
    ("\\boxed{A} or \\boxed{B}", "B", 0.0, "hedge with two letters"),
    ("\\boxed{B} ... so \\boxed{(B)}", "B", 1.0, "same letter boxed twice"),
    ("\\boxed{42}", "B", 0.0, "box without a letter"),
    ("Answer: C", "C", 1.0, "Answer: X"),
    ("So the answer is (e).", "E", 1.0, "The answer is (X)"),
    ("The answer is A. Wait, the answer is D.", "D", 1.0, "the last phrase counts"),
    ("The answer is a mystery.", "A", 0.0, "an article is not a choice"),
    ("<think>The answer is B", "B", 0.0, "unclosed think earns 0"),
    ("<think>\\boxed{B}</think>I do not know.", "B", 0.0, "answer only inside think"),
]


@pytest.mark.parametrize(("response", "gold", "expected", "reason"), SCIENCE_CASES, ids=[c[3] for c in SCIENCE_CASES])
def test_science_reward(response, gold, expected, reason):
    assert science_reward(response, gold) == expected, reason


@pytest.mark.parametrize("gold", ["K", "", "AB", None], ids=["not a choice", "empty", "two letters", "None"])
def test_bad_science_gold_is_a_data_error(gold):
    with pytest.raises((ValueError, TypeError)):
        science_reward("\\boxed{A}", gold)


WEATHER_JSON = '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}'
TIME_JSON = '{"name": "get_time", "arguments": {"tz": "UTC", "exact": true}}'
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}
TIME = {"name": "get_time", "arguments": {"tz": "UTC", "exact": True}}


def _call(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


# (response, expected calls, expected reward, reason)
TOOL_CASES = [
    (_call(WEATHER_JSON), [WEATHER], 1.0, "exact call"),
    (_call('{"arguments": {"days": 3.0, "city": "Paris"}, "name": "get_weather"}'), [WEATHER], 1.0,
     "key order and 3 == 3.0 do not matter"),
    (_call('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": 3}"}'), [WEATHER], 1.0,
     "arguments as a JSON string"),
    (_call('{"name": "get_weather", "arguments": {"city": "Paris", "days": "3"}}'), [WEATHER], 0.0,
     "number written as a string"),
    (_call('{"name": "get_time", "arguments": {"tz": "UTC", "exact": 1}}'), [TIME], 0.0, "1 is not true"),
    (_call('{"name": "get_weather", "arguments": {"city": "Paris"}}'), [WEATHER], 0.0, "missing argument"),
    (_call('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}'), [WEATHER], 0.0, "malformed JSON"),
    (_call(WEATHER_JSON) + _call("{oops"), [WEATHER], 0.0, "a valid call plus an invalid block"),
    (_call(WEATHER_JSON) + _call(TIME_JSON), [WEATHER, TIME], 1.0, "two calls in order"),
    (_call(TIME_JSON) + _call(WEATHER_JSON), [WEATHER, TIME], 0.0, "two calls in the wrong order"),
    (_call(WEATHER_JSON) + "<tool_call>{", [WEATHER], 0.0, "an unterminated block"),
    ("<think>" + _call(WEATHER_JSON) + "</think>No call.", [WEATHER], 0.0, "a call only inside think"),
    ("<think>plan" + _call(WEATHER_JSON), [WEATHER], 0.0, "unclosed think earns 0"),
    ("No tool is needed.", [], 1.0, "no call expected, none made"),
    (_call(WEATHER_JSON), [], 0.0, "a call where none is expected"),
]


@pytest.mark.parametrize(("response", "expected_calls", "expected", "reason"), TOOL_CASES,
                         ids=[c[3] for c in TOOL_CASES])
def test_tool_call_reward(response, expected_calls, expected, reason):
    assert tool_call_reward(response, expected_calls) == expected, reason


def test_parse_tool_calls_records_invalid_blocks_without_raising():
    calls = parse_tool_calls(_call(WEATHER_JSON) + _call("{oops") + _call('["not", "an", "object"]'))
    assert [c["valid"] for c in calls] == [True, False, False]
    assert calls[0]["name"] == "get_weather" and calls[0]["arguments"] == WEATHER["arguments"]
    assert "malformed JSON" in calls[1]["error"]


@pytest.mark.parametrize(
    "expected_calls",
    [[{"arguments": {}}], [{"name": "f", "arguments": "x"}], {"name": "f", "arguments": {}}],
    ids=["no name", "arguments not a dict", "not a list"],
)
def test_bad_expected_calls_are_data_errors(expected_calls):
    with pytest.raises((ValueError, TypeError)):
        tool_call_reward(_call(WEATHER_JSON), expected_calls)
