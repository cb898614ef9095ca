"""The chat template: Jinja and Python agree; modes, history and tools render as documented."""

import pytest

from nemotron_cascade import chat

TOOLS = [{"name": "get_time", "description": "Local time.", "parameters": {"city": "string"}}]

CONVERSATIONS = [
    ("single turn", [{"role": "user", "content": "hi"}], None, True),
    ("no_think global", [{"role": "user", "content": "hi"}], None, False),
    ("system prompt", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], None, True),
    ("tools without system", [{"role": "user", "content": "time in Oslo?"}], TOOLS, True),
    ("tools with system", [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}], TOOLS, False),
    ("per-turn mode switch", [
        {"role": "user", "content": "a", "thinking": False},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "b", "thinking": True}], None, False),
    ("history thinking stripped", [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "<think>\nwork\n</think>\n\nA"},
        {"role": "user", "content": "b"}], None, True),
    ("tool turn", [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": chat.format_tool_call("get_time", {"city": "Oslo"})},
        {"role": "tool", "content": "10:00"}], TOOLS, True),
]


@pytest.mark.parametrize("name,messages,tools,think", CONVERSATIONS, ids=[c[0] for c in CONVERSATIONS])
@pytest.mark.parametrize("gen", [True, False])
def test_jinja_template_matches_python_renderer(tokenizer, name, messages, tools, think, gen):
    jinja = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=gen,
                                          enable_thinking=think)
    assert jinja == chat.render(messages, tools, add_generation_prompt=gen, enable_thinking=think)


def test_mode_flag_is_appended_to_every_user_turn_not_the_system_prompt():
    text = chat.render([{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "A"}, {"role": "user", "content": "b", "thinking": False}])
    assert "S /think" not in text and "a /think<|im_end|>" in text and "b /no_think<|im_end|>" in text


def test_history_keeps_only_final_answer_but_last_turn_keeps_thinking():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>\nold\n</think>\n\nA"},
            {"role": "user", "content": "b"}, {"role": "assistant", "content": "<think>\nnew\n</think>\n\nB"}]
    text = chat.render(msgs)
    assert "old" not in text and "<think>\nnew\n</think>" in text


def test_tools_are_declared_in_the_system_prompt():
    text = chat.render([{"role": "user", "content": "q"}], TOOLS)
    assert text.startswith("<|im_start|>system\n# Tools\n<tools>\n{\"name\": \"get_time\"")


SPLITS = [
    ("closed think", "<think>\nx\n</think>\n\nA", "x", "A", "thinking"),
    ("no think block is non-thinking mode", "just A", None, "just A", "plain"),
    ("unclosed think earns no answer", "<think>\nstill going", "still going", None, "unclosed"),
    ("answer after the last close", "<think>a</think>mid</think> end", "a</think>mid", "end", "thinking"),
    ("empty answer after think", "<think>x</think>", "x", "", "thinking"),
]


@pytest.mark.parametrize("name,text,thinking,answer,status", SPLITS, ids=[s[0] for s in SPLITS])
def test_split_response(name, text, thinking, answer, status):
    parsed = chat.split_response(text)
    assert (parsed.thinking, parsed.answer, parsed.status) == (thinking, answer, status)


CALLS = [
    ("one valid call", chat.format_tool_call("f", {"x": 1}), [("f", {"x": 1}, None)]),
    ("invalid json named", "<tool_call>\n{\"name\": f}\n</tool_call>", [(None, None, "malformed JSON")]),
    ("missing name", "<tool_call>{\"arguments\": {}}</tool_call>", [(None, None, "string 'name'")]),
    ("arguments not an object", "<tool_call>{\"name\": \"f\", \"arguments\": 3}</tool_call>",
     [("f", None, "must be a JSON object")]),
    ("unclosed tag", "<tool_call>{\"name\": \"f\"}", [(None, None, "unterminated")]),
    ("call inside thinking is ignored", "<think><tool_call>{\"name\": \"f\"}</tool_call></think>ok", []),
    ("two calls in order", chat.format_tool_call("a", {}) + chat.format_tool_call("b", {}),
     [("a", {}, None), ("b", {}, None)]),
]


@pytest.mark.parametrize("name,text,expected", CALLS, ids=[c[0] for c in CALLS])
def test_parse_tool_calls(name, text, expected):
    calls = chat.parse_tool_calls(text)
    assert len(calls) == len(expected)
    for call, (fn, args, err) in zip(calls, expected):
        assert (call["name"], call["arguments"]) == (fn, args)
        assert call["valid"] if err is None else (not call["valid"] and err in call["error"])


@pytest.mark.parametrize("messages,field", [
    ([], "at least one"),
    ([{"role": "user"}], "'role' and 'content'"),
    ([{"role": "robot", "content": "x"}], "field 'role'"),
    ([{"role": "user", "content": 3}], "field 'content'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "system message"),
])
def test_malformed_conversations_name_the_problem(messages, field):
    with pytest.raises(ValueError, match=field):
        chat.render(messages)
