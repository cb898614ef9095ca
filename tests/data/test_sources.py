"""The public HF sources mapped onto our task schemas: fixture rows shaped like the real ones
(tests/data/fixtures/sources/<name>.jsonl, columns as the datasets' cards give them), malformed rows
quarantined with a reason, and the Kedro datasets reading local JSON through ``load_dataset``.
Everything here runs offline."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from nemotron_cascade.data import sources as S  # noqa: E402
from nemotron_cascade.data.schemas import validate_row  # noqa: E402
from nemotron_cascade.rewards.swe import parse_patch, swe_reward  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
ROOT = Path(__file__).resolve().parents[2]
ALL = sorted({**S.SOURCES, **S.BENCHMARKS})


def rows_of(name: str) -> list[dict]:
    with open(FIXTURES / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def mapped(name: str, **kwargs) -> tuple[list[dict], list[dict]]:
    return S.map_rows(name, rows_of(name), **kwargs)


# --------------------------------------------------------------------------------------------
# Every fixture row maps to a valid task, or to the reject we expect of it
EXPECTED_REJECTS = {  # source -> {row: (field, words in the reason)}
    "taco": {2: ("input_output", "call-based problem (fn_name='add')")},
    "apps": {1: ("input_output", "call-based problem (fn_name='double')")},
    "livecodebench": {1: ("public_test_cases", "testtype 'functional'")},
    "swe_smith": {1: ("problem_statement", "empty")},
    "open_math_reasoning": {1: (None, "duplicate of row 0")},
    "llama_nemotron_chat": {2: ("input", "multi-turn conversation (3 turns: user, assistant, user)"),
                            3: ("output", "no final answer after the reasoning")},
    "helpsteer3": {2: ("overall_preference", "a tie (0: the responses are about the same)"),
                   3: ("context", "multi-turn conversation (3 turns: user, assistant, user)")},
    "if_multi_constraints": {2: ("ground_truth", "instruction id 'keywords:word_once' is not supported"),
                             3: ("ground_truth", "kwargs of 'detectable_format:number_bullet_lists' do not fit")},
    "swe_rebench": {1: ("problem_statement", "empty")},
}


def test_every_source_and_benchmark_has_a_fixture():
    assert sorted(p.stem for p in FIXTURES.glob("*.jsonl")) == ALL


def _readme_cards() -> dict[str, tuple[str, str, str]]:
    """fixture -> (HF repo, config, split) from the table of tests/data/fixtures/sources/README.md."""
    cards = {}
    for line in (FIXTURES / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 4 and cells[0] not in ("fixture", "---"):
            assert cells[0] not in cards, f"{cells[0]} listed twice in the fixtures' README"
            cards[cells[0]] = (cells[1], cells[2], cells[3])
    return cards


def test_every_fixture_names_the_dataset_card_it_follows():
    """The fixtures' README is the one list of cards: every fixture in it, with the registry's
    repository, config and split."""
    cards = _readme_cards()
    assert sorted(cards) == sorted(p.stem for p in FIXTURES.glob("*.jsonl"))
    for name, (repo, config, split) in cards.items():
        spec = S.get_spec(name)
        assert (repo, config, split) == (spec.hf_path, spec.config or "-", spec.split), name


@pytest.mark.parametrize("name", ALL)
def test_fixture_rows_map_to_valid_tasks(name):
    rows = rows_of(name)
    tasks, rejects = S.map_rows(name, rows, rl_share=0.5)
    spec = S.get_spec(name)
    assert {r["row"]: r["field"] for r in rejects} == {k: v[0] for k, v in EXPECTED_REJECTS.get(name, {}).items()}
    assert len(tasks) + len(rejects) == len(rows)
    for task in tasks:
        assert validate_row(f"task.{spec.domain}", task) is None
        assert validate_row("task", task) is None  # the schema sft_prompts / rl_prompts / benchmark use
        assert task["id"].startswith(f"{name}-") and task["source"] == name and task["domain"] == spec.domain
        assert task["split"] == "bench" if spec.text_fields else task["split"] in ("sft", "rl")
        json.dumps(task)  # JsonlDataset can write it
    assert len({t["id"] for t in tasks}) == len(tasks)


@pytest.mark.parametrize("name,row,words", [(n, r, w) for n, d in EXPECTED_REJECTS.items() for r, (_, w) in d.items()])
def test_expected_rejects_name_source_row_and_reason(name, row, words):
    reject = next(r for r in mapped(name)[1] if r["row"] == row)
    assert reject["source"] == name and words in reject["reason"]
    assert reject["reason"].startswith(f"{name} row {row}")
    assert reject["kind"] == ("duplicate" if "duplicate" in words else "invalid")


# Field-by-field checks of one mapped row per source (row index into the fixture's *tasks*).
EXPECTED_FIELDS = [
    ("acemath_instruct", 0, {"answer": "91", "prompt": rows_of("acemath_instruct")[0]["messages"][0]["content"]}),
    ("acemath_instruct", 1, {"answer": "\\frac{3}{4}"}),  # empty `answer` column: the reply's last box
    ("numina_math_cot", 0, {"answer": "\\frac{32}{25}", "origin": "synthetic_math",
                            "prompt": "Suppose that $g(x) = 5x - 3$. What is $g^{-1}(g^{-1}(14))$?"}),
    ("numina_math_cot", 1, {"answer": "\\{2, 3\\}"}),  # nested braces in the box
    ("open_math_reasoning", 1, {"answer": "\\dfrac{\\pi}{4}", "problem_type": "has_answer_extracted",
                                "origin": "aops_c7_college_math"}),
    ("taco", 0, {"tests": [{"input": "4\n1 5\n314 15\n-99 99\n123 987\n", "output": "6\n329\n0\n1110\n"},
                           {"input": "1\n0 0\n", "output": "0\n"}],
                 "verifiable": True, "difficulty": "EASY", "origin": "codeforces"}),
    ("taco", 1, {"tests": [{"input": "abc\n", "output": "cba\n"}, {"input": "level\n", "output": "level\n"}]}),
    ("apps", 0, {"tests": [{"input": "3\n", "output": "3\n"}, {"input": "100\n", "output": "100\n"}],
                 "solution": "print(int(input()))\n", "difficulty": "introductory"}),
    ("open_code_reasoning", 0, {"tests": [], "verifiable": False, "split": "sft",
                                "origin": {"dataset": "code_contests", "split": "train"}}),
    ("s1k", 0, {"answer": "B", "answer_format": "choice", "subject": "science",
                "choices": ["$\\mathrm{O}_2$", "$\\mathrm{H}_2$", "$\\mathrm{CO}_2$", "$\\mathrm{N}_2$"]}),
    ("s1k", 1, {"answer": "128", "choices": [], "answer_format": "free_form"}),
    ("s1k", 2, {"answer": "3.98\\times10^{-19}\\ \\mathrm{J}", "answer_format": "free_form"}),
    ("llama_nemotron_science", 0, {"answer": "C", "reasoning": "on", "choices": [
        "Glycolysis", "Fermentation", "Oxidative phosphorylation", "The Calvin cycle"]}),
    ("llama_nemotron_science", 1, {"answer": "2.4 \\times 10^{3}\\ \\text{J}", "choices": [],
                                   "answer_format": "free_form"}),
    ("swe_bench_train", 0, {"repo": {}, "repo_name": "marshmallow-code/marshmallow",
                            "file": "src/marshmallow/fields.py",
                            "files": ["src/marshmallow/fields.py"], "instance_id": "marshmallow-code__marshmallow-1359",
                            "base_commit": "b40a0f4e33823e6d0f341f7e8684e359a99060d1",
                            "fail_to_pass": [
                                "tests/test_fields.py::TestParentAndName::test_datetime_list_inner_format"]}),
    # two files: lexer.py changes 3 lines, linter.py 2, so lexer.py is the file to localise
    ("swe_bench_train", 1, {"file": "sqlfluff/core/parser/lexer.py",
                            "files": ["sqlfluff/core/parser/lexer.py", "sqlfluff/core/linter.py"]}),
    ("swe_smith", 0, {"repo_name": "swesmith/pygments__pygments.27649ebb", "file": "pygments/lexers/python.py",
                      "branch": "pygments__pygments.27649ebb.func_basic__0xk1pe3w",  # no base_commit since mid-2025
                      "image_name": "jyangballin/swesmith.x86_64.pygments_1776_pygments.27649ebb",
                      "fail_to_pass": ["tests/test_python.py::test_console_analyse_text"]}),
    ("swe_fixer", 0, {"repo_name": "psf/requests", "file": "requests/models.py"}),
    ("xlam_function_calling", 0, {
        "prompt": "Where can I find live giveaways for beta access and games?",
        "expected_calls": [{"name": "live_giveaways_by_type", "arguments": {"type": "beta"}},
                           {"name": "live_giveaways_by_type", "arguments": {"type": "game"}}]}),
    ("xlam_function_calling", 1, {"expected_calls": [{"name": "calculate_factorial", "arguments": {"n": 5}}]}),
    ("aime24", 0, {"answer": "204", "split": "bench"}),
    ("aimo_validation_aime", 0, {"answer": "116"}),  # an integer column
    ("math500", 0, {"answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2}),
    ("livecodebench", 0, {"tests": [{"input": "3\nabc\nacb\nbca\n", "output": "YES\nYES\nNO\n"}],
                          "origin": "codeforces"}),
    ("ifeval", 0, {"instruction_id_list": ["punctuation:no_comma", "detectable_format:number_highlighted_sections",
                                           "length_constraints:number_words"],
                   "kwargs": [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}],
                   "task_text": rows_of("ifeval")[0]["prompt"]}),
    ("swe_bench_verified", 0, {"file": "astropy/modeling/separable.py", "split": "bench"}),
    # general: one user prompt, the response's final answer as `chosen`, no pair (empty `rejected`)
    ("llama_nemotron_chat", 0, {
        "prompt": "What are some good ways to stay focused while studying at home?", "topic": "chat",
        "chosen": rows_of("llama_nemotron_chat")[0]["output"].split("</think>\n\n", 1)[1], "rejected": "",
        "reasoning": "on", "origin": "DeepSeek-R1"}),
    ("llama_nemotron_chat", 1, {"chosen": "Soft autumn rain on amber leaves,\nthe quiet season slowly grieves.",
                                "reference_responses": {"plain": "Soft autumn rain on amber leaves,\n"
                                                                 "the quiet season slowly grieves."}}),
    ("llama_nemotron_safety", 0, {"topic": "safety", "rejected": "", "origin": "Mixtral-8x22B-Instruct-v0.1",
                                  "chosen": rows_of("llama_nemotron_safety")[0]["output"]}),
    # HelpSteer3: negative overall_preference prefers response1, positive response2
    ("helpsteer3", 0, {"prompt": "Give me three tips for writing a clear cover letter.", "topic": "general",
                       "chosen": rows_of("helpsteer3")[0]["response1"],
                       "rejected": rows_of("helpsteer3")[0]["response2"],
                       "preference_strength": 2, "language": "english", "split": "sft",
                       "reference_responses": {"plain": rows_of("helpsteer3")[0]["response1"]}}),
    ("helpsteer3", 1, {"topic": "stem", "preference_strength": 3,
                       "chosen": "By the product rule, d/dx[x^3 sin(x)] = 3x^2 sin(x) + x^3 cos(x).",
                       "rejected": "The derivative is 3x^2 sin(x)."}),
    ("helpsteer3", 2, {"topic": "code", "chosen": rows_of("helpsteer3")[4]["response2"],
                       "rejected": "Use open() and split each line on commas.", "language": "python"}),
    # IF-RLVR: open-instruct's Python-literal ground truth (row 0) and JSON (row 1); None kwargs -> {}
    ("if_multi_constraints", 0, {"instruction_id_list": ["change_case:english_lowercase", "keywords:existence"],
                                 "kwargs": [{}, {"keywords": ["evaporation", "clouds"]}],
                                 "origin": "ai2-adapt-dev/flan_v2_converted_16928",
                                 "prompt": rows_of("if_multi_constraints")[0]["messages"][0]["content"],
                                 # the prompt without the `constraint` text the source appended
                                 "task_text": "Describe the purpose of the water cycle for a ten-year-old."}),
    ("if_multi_constraints", 1, {"instruction_id_list": ["length_constraints:number_words",
                                                         "detectable_content:postscript"],
                                 "kwargs": [{"num_words": 120, "relation": "less than"},
                                            {"postscript_marker": "P.S."}]}),
    ("swe_rebench", 0, {"repo": {}, "repo_name": "encode/httpx", "instance_id": "encode__httpx-2701",
                        "base_commit": "df5dbc05cf8e7cee2bbdc9d0b2df4d4a8e4e0ad4", "file": "httpx/_urls.py",
                        "files": ["httpx/_urls.py"],
                        "fail_to_pass": ["tests/models/test_url.py::test_url_join_rfc3986"],
                        "gold_patch": rows_of("swe_rebench")[0]["patch"]}),
    # reference_responses: the source's own response in the chat format (thinking: <think> block, then
    # the answer; plain: the answer alone)
    ("acemath_instruct", 0, {"reference_responses": {
        "plain": rows_of("acemath_instruct")[0]["messages"][1]["content"]}}),
    ("numina_math_cot", 1, {"reference_responses": {"plain": rows_of("numina_math_cot")[1]["solution"]}}),
    ("open_math_reasoning", 1, {"reference_responses": {"thinking": (
        "<think>\nThe antiderivative is arctan x, so the value is arctan 1 - arctan 0 = pi/4.\n</think>\n\n"
        "$\\int_0^1 \\frac{dx}{1+x^2} = \\arctan 1 - \\arctan 0 = \\boxed{\\dfrac{\\pi}{4}}$.")}}),
    ("open_code_reasoning", 1, {"reference_responses": {"thinking": (
        "<think>\nCompare with its reverse.\n</think>\n\n```python\ns = input().strip()\n"
        "print('YES' if s == s[::-1] else 'NO')\n```")}}),
    ("taco", 1, {"reference_responses": {"plain": "```python\nprint(input()[::-1])\n```"}}),
    ("apps", 0, {"reference_responses": {"plain": "```python\nprint(int(input()))\n```"}}),
    ("s1k", 0, {"reference_responses": {"thinking": (
        "<think>\nGraham's law: rate is inversely proportional to the square root of molar mass; H2 is lightest."
        "\n</think>\n\nBy Graham's law the lightest gas, $\\mathrm{H}_2$, effuses fastest. The answer is (B).")}}),
    ("llama_nemotron_science", 0, {"reference_responses": {"thinking": (
        "<think>\nATP synthase in the inner membrane is driven by the proton gradient of the electron transport "
        "chain.\n</think>\n\nThe inner mitochondrial membrane hosts the electron transport chain and ATP synthase, "
        "which together carry out oxidative phosphorylation.\n\nThe answer is (C).")}}),
    ("llama_nemotron_science", 1, {"reference_responses": {"plain": rows_of("llama_nemotron_science")[1]["output"]}}),
    ("xlam_function_calling", 1, {"reference_responses": {
        "plain": '<tool_call>\n{"name": "calculate_factorial", "arguments": {"n": 5}}\n</tool_call>'}}),
]


@pytest.mark.parametrize("name,index,fields", EXPECTED_FIELDS, ids=[f"{n}-{i}" for n, i, _ in EXPECTED_FIELDS])
def test_mapped_fields(name, index, fields):
    task = mapped(name)[0][index]
    for key, value in fields.items():
        assert task[key] == value, key


def test_gpqa_choices_are_shuffled_stably_and_the_letter_names_the_correct_answer():
    rows = rows_of("gpqa_diamond")
    first, again = mapped("gpqa_diamond")[0], S.map_rows("gpqa_diamond", copy.deepcopy(rows))[0]
    for task, raw in zip(first, rows):
        assert task["choices"][S.LETTERS.index(task["answer"])] == raw["Correct Answer"]
        assert sorted(task["choices"]) == sorted([raw["Correct Answer"],
                                                  *(raw[f"Incorrect Answer {i}"] for i in (1, 2, 3))])
        assert f"{task['answer']}) {raw['Correct Answer']}" in task["prompt"]
    assert first == again


def test_reference_solutions_pass_their_own_mapped_tests():
    from nemotron_cascade.rewards.code import code_reward

    for name in ("taco", "apps"):
        for task in mapped(name)[0]:
            assert code_reward(f"```python\n{task['solution']}```", task["tests"]) == 1.0, task["id"]


def test_science_choice_answers_are_gradable_by_the_science_reward():
    from nemotron_cascade.rewards.science import science_reward

    for name in ("s1k", "llama_nemotron_science", "gpqa_diamond"):
        for task in mapped(name)[0]:
            if task["answer_format"] == "choice":
                assert science_reward(f"The answer is ({task['answer']}).", task["answer"]) == 1.0


# --------------------------------------------------------------------------------------------
# Malformed rows: each gives a reject naming the source, the row and the field
def _mutated(name: str, index: int, change) -> list[dict]:
    rows = copy.deepcopy(rows_of(name))
    change(rows[index])
    return rows


MALFORMED = [  # (source, row, mutation, field, words in the reason)
    ("acemath_instruct", 0, lambda r: r.pop("messages"), "messages", "missing"),
    ("acemath_instruct", 1, lambda r: r["messages"][1].update(content="x is three quarters."),
     "messages", "no \\boxed{} answer"),
    ("numina_math_cot", 0, lambda r: r.update(solution="We prove the claim by induction."),
     "solution", "no \\boxed{} answer"),
    ("numina_math_cot", 1, lambda r: r.pop("problem"), "problem", "missing"),
    ("open_math_reasoning", 2, lambda r: r.update(expected_answer="", generated_solution="no box here"),
     "expected_answer", "no \\boxed{} answer"),
    ("taco", 0, lambda r: r.update(input_output='{"inputs": ["1\\n"], "outputs": '), "input_output", "not valid JSON"),
    ("taco", 0, lambda r: r.update(input_output=json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["1\n"]})),
     "input_output", "2 inputs but 1 outputs"),
    ("taco", 1, lambda r: r.update(input_output=""), "input_output", "not valid JSON"),
    ("apps", 0, lambda r: r.update(input_output=None), "input_output", "missing"),  # how Arrow fills a missing cell
    ("apps", 0, lambda r: r.pop("question"), "question", "missing"),
    ("open_code_reasoning", 0, lambda r: r.update(input="-", index="4521"), "input", "placeholder '-'"),
    ("s1k", 0, lambda r: r.update(solution="The lightest gas effuses fastest."), "solution", "no choice letter"),
    ("s1k", 2, lambda r: r.update(solution="A long derivation\nwithout a final boxed value."),
     "solution", "without \\boxed{}"),
    ("llama_nemotron_science", 0, lambda r: r.update(output="<think>\nunfinished reasoning"),
     "output", "no choice letter"),
    ("llama_nemotron_science", 1, lambda r: r.update(input=[{"role": "system", "content": "be brief"}]),
     "input", "no non-empty 'user'"),
    ("swe_bench_train", 0, lambda r: r.update(patch="Fixed it by editing fields.py"), "patch", "changes no file"),
    ("swe_bench_train", 0, lambda r: r.update(patch="--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n-a\n+b\n"),
     "patch", "not a unified diff"),
    ("swe_bench_train", 1, lambda r: r.update(FAIL_TO_PASS="[\"test_a\", "), "FAIL_TO_PASS", "not valid JSON"),
    ("swe_fixer", 0, lambda r: r.pop("base_commit"), "base_commit", "missing"),
    ("swe_smith", 0, lambda r: r.update(patch="not a diff"), "patch", "changes no file"),
    ("xlam_function_calling", 0, lambda r: r.update(tools="[{\"name\": \"live_giveaways_by_type\""),
     "tools", "not valid JSON"),
    ("xlam_function_calling", 1, lambda r: r.update(answers=json.dumps([{"name": "get_weather", "arguments": {}}])),
     "answers", "undeclared tool 'get_weather'"),
    ("xlam_function_calling", 1,
     lambda r: r.update(answers=json.dumps([{"name": "calculate_factorial", "arguments": "n=5"}])),
     "answers", "call 0 is not"),
    ("gpqa_diamond", 0, lambda r: r.pop("Incorrect Answer 2"), "Incorrect Answer 2", "missing"),
    ("livecodebench", 0, lambda r: r.update(public_test_cases="[]"), "public_test_cases", "no tests"),
    ("ifeval", 0, lambda r: r["kwargs"].pop(), "kwargs", "expected 3 objects"),
    ("math500", 1, lambda r: r.update(answer="  "), "answer", "empty"),
    ("llama_nemotron_chat", 0, lambda r: r.update(input=[{"role": "system", "content": "detailed thinking on"}]),
     "input", "no final non-empty 'user' message"),
    ("llama_nemotron_chat", 1, lambda r: r.update(output="<think>\n</think>\n\n  "), "output", "no final answer"),
    ("llama_nemotron_safety", 0, lambda r: r.pop("output"), "output", "missing"),
    ("helpsteer3", 0, lambda r: r.update(response2=r["response1"] + "  "), "response2", "identical to response1"),
    ("helpsteer3", 1, lambda r: r.update(overall_preference=5), "overall_preference", "expected an integer in -3..3"),
    ("helpsteer3", 1, lambda r: r.update(overall_preference=True), "overall_preference", "expected an integer"),
    ("helpsteer3", 0, lambda r: r.update(context=[{"role": "assistant", "content": "Hello!"}]),
     "context", "no final non-empty 'user' message"),
    ("helpsteer3", 0, lambda r: r.pop("response1"), "response1", "missing"),
    ("if_multi_constraints", 0,
     lambda r: r.update(ground_truth="[{'instruction_id': ['punctuation:no_comma'], 'kwargs': []}]"),
     "ground_truth", "'kwargs' must be a list of 1 entries"),
    ("if_multi_constraints", 1, lambda r: r.update(ground_truth="[{'instruction_id': "), "ground_truth",
     "neither JSON nor a Python literal"),
    ("if_multi_constraints", 0, lambda r: r.update(ground_truth="[{'instruction_id': ['language:response_language'], "
                                                               "'kwargs': [{'language': 'xx'}]}]"),
     "ground_truth", "unsupported language code 'xx'"),
    ("if_multi_constraints", 0, lambda r: r.update(messages=[{"role": "system", "content": "Be brief."}]),
     "messages", "no non-empty 'user' message"),
    ("swe_rebench", 0, lambda r: r.update(patch=""), "patch", "empty"),
    ("swe_rebench", 0, lambda r: r.update(FAIL_TO_PASS="[\"tests/x.py::t\", "), "FAIL_TO_PASS", "not valid JSON"),
]


@pytest.mark.parametrize("name,index,change,field,words", MALFORMED,
                         ids=[f"{m[0]}-{m[3]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_rows_are_rejected_with_source_row_and_field(name, index, change, field, words):
    tasks, rejects = S.map_rows(name, _mutated(name, index, change), start=100)
    reject = next(r for r in rejects if r["row"] == 100 + index)
    assert reject["source"] == name and reject["field"] == field and reject["kind"] == "invalid"
    assert reject["reason"].startswith(f"{name} row {100 + index}")
    assert f"field '{field}'" in reject["reason"] and words in reject["reason"]
    assert all(t["id"] for t in tasks)  # the other rows still map


def test_a_row_that_is_not_an_object_is_rejected():
    tasks, rejects = S.map_rows("math500", ["not a row", *rows_of("math500")])
    assert len(tasks) == 2 and rejects[0]["row"] == 0 and "expected a row object" in rejects[0]["reason"]


def test_raw_id_comes_from_the_native_id_column():
    _, rejects = S.map_rows("apps", rows_of("apps"))
    assert rejects[0]["raw_id"] == 4001 and "(id 4001)" in rejects[0]["reason"]


def _v1_text(question: str, thinking: str) -> str:
    """Llama-Nemotron v1's ``input``: the Llama-3 template's text, not a list of turns."""
    return (f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\ndetailed thinking {thinking}<|eot_id|>"
            f"<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_llama_nemotron_v1_text_input_is_cut_to_the_user_turn():
    row = dict(rows_of("llama_nemotron_science")[0])
    question = row["input"][0]["content"]
    row["input"] = _v1_text(question, "on")
    assert S.map_llama_nemotron_science(row)["prompt"] == question


def test_llama_nemotron_general_reads_the_v1_template_text_and_refuses_a_second_user_turn():
    row = dict(rows_of("llama_nemotron_safety")[1])
    question = row["input"][0]["content"]
    row["input"] = _v1_text(question, "off")
    row["output"] += "<|eot_id|>"  # v1 rows end their response with the Llama-3 end of turn
    task = S.map_llama_nemotron_safety(row)
    assert task["prompt"] == question and task["chosen"] == rows_of("llama_nemotron_safety")[1]["output"]
    assert task["reference_responses"] == {"plain": task["chosen"]}
    row["input"] = row["input"].replace("<|start_header_id|>assistant", "<|start_header_id|>assistant<|end_header_id|>"
                                        "\n\nSure?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nYes.<|eot_id|>"
                                        "<|start_header_id|>assistant", 1)
    with pytest.raises(S.RowError, match=r"multi-turn conversation \(3 turns: user, assistant, user\)"):
        S.map_llama_nemotron_safety(row)


# --------------------------------------------------------------------------------------------
# reference_responses: the contract the `dataset` teacher reads
@pytest.mark.parametrize("text,expected,reason", [
    ("<think>\nplan\n</think>\nAnswer.", {"thinking": "<think>\nplan\n</think>\n\nAnswer."},
     "a trace: re-written in the chat format (<think> block, blank line, answer)"),
    ("Answer.", {"plain": "Answer."}, "no trace: the answer alone"),
    ("<think>\n\n</think>\n\nAnswer.", {"plain": "Answer."}, "an empty trace is no trace"),
    ("<think>\nunfinished", {}, "an unclosed think block has no answer"),
    ("<think>plan</think>  ", {}, "a trace without an answer"),
    ("   ", {}, "a blank response"),
    (None, {}, "no response"),
])
def test_references(text, expected, reason):
    assert S.references(text) == expected, reason


# training sources whose rows carry no response (prompts with tests, repositories or constraints only)
NO_RESPONSE = {"if_multi_constraints", "swe_bench_train", "swe_fixer", "swe_rebench", "swe_smith"}


@pytest.mark.parametrize("name", ALL)
def test_reference_responses_follow_the_teacher_contract(name):
    from nemotron_cascade import chat

    for task in mapped(name)[0]:
        refs = task.get("reference_responses")
        if name in S.BENCHMARKS or name in NO_RESPONSE:
            assert refs is None, (task["id"], "benchmarks and response-less sources carry no reference")
            continue
        assert isinstance(refs, dict) and refs and set(refs) <= {"thinking", "plain"}, task["id"]
        assert all(isinstance(v, str) and v.strip() for v in refs.values()), task["id"]
        if "thinking" in refs:
            parsed = chat.split_response(refs["thinking"])
            assert parsed.status == "thinking" and parsed.thinking and parsed.answer, task["id"]
            assert refs["thinking"] == chat.thinking_response(parsed.thinking, parsed.answer), task["id"]
        if "plain" in refs:
            assert chat.split_response(refs["plain"]).status == "plain", task["id"]


def test_reference_responses_of_code_and_tool_calls_pass_their_own_verifiers():
    from nemotron_cascade.rewards.code import code_reward
    from nemotron_cascade.rewards.tool_calling import tool_call_reward

    for name in ("taco", "apps"):
        for task in mapped(name)[0]:
            assert code_reward(task["reference_responses"]["plain"], task["tests"]) == 1.0, task["id"]
    for task in mapped("xlam_function_calling")[0]:
        assert tool_call_reward(task["reference_responses"]["plain"], task["expected_calls"]) == 1.0, task["id"]


# --------------------------------------------------------------------------------------------
# The new sources go through the gpu profile's decontamination: a benchmark 9-gram planted in a
# prompt (under case/punctuation noise) removes that row and only that row
NEW_SOURCES = {"llama_nemotron_chat": "livecodebench", "llama_nemotron_safety": "gpqa_diamond",
               "helpsteer3": "math500", "if_multi_constraints": "ifeval", "swe_rebench": "swe_bench_verified"}


@pytest.mark.parametrize("name,benchmark", sorted(NEW_SOURCES.items()))
def test_a_planted_benchmark_9gram_in_a_new_source_is_removed_by_decontamination(name, benchmark):
    import random

    from nemotron_cascade.data import curation
    from nemotron_cascade.data.dedup import DedupConfig

    params = yaml.safe_load((ROOT / "conf/gpu/parameters_data_curation.yml").read_text())["curation"]
    texts = [t for b in sorted(S.BENCHMARKS) for t in S.benchmark_texts(b, rows_of(b))]
    words = S.benchmark_texts(benchmark, rows_of(benchmark))[0].split()
    leak = curation.format_noise(" ".join(words[2:2 + params["decontamination"]["n"]]), random.Random(0))
    tasks = mapped(name, rl_share=0.5)[0]
    domain = tasks[0]["domain"]
    planted = {**tasks[0], "prompt": f"{tasks[0]['prompt']}\n{leak}"}
    if "task_text" in planted:  # the request part of an IF prompt, which the leak is in too
        planted["task_text"] = f"{planted['task_text']}\n{leak}"
    kept, removed, _, _ = curation.curate({domain: [planted, *tasks[1:]]}, params["item_fields"],
                                          int(params["decontamination"]["n"]), DedupConfig(**params["dedup"]), texts)
    assert [(r["id"], r["step"]) for r in removed] == [(planted["id"], "decontamination")]
    assert [t["id"] for t in kept] == [t["id"] for t in tasks[1:]]  # the clean rows all stay
    assert curation.curate({domain: tasks}, params["item_fields"], int(params["decontamination"]["n"]),
                           DedupConfig(**params["dedup"]), texts)[1] == []  # unplanted: nothing removed


def test_if_training_rows_are_decontaminated_on_their_request_not_on_ifeval_template_sentences():
    """IF-RLVR prompts carry IFEval's constraint templates, which IFEval's own prompts share: on
    `prompt` the 9-gram rule removes them all; on `task_text` (the request without the appended
    constraint) only a real copy of an IFEval request is removed."""
    from nemotron_cascade.data import curation

    official = ROOT / "tests/rewards/fixtures/ifeval_official/input_data.jsonl"
    ifeval = [json.loads(line)["prompt"] for line in official.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = mapped("if_multi_constraints")[0]
    on_prompt = curation.decontaminate(tasks, ifeval, {"default": ["prompt"]}, 9)[0]
    assert on_prompt == [], "the template sentences alone share 9-grams with IFEval"
    fields = {"instruction_following": ["task_text", "kwargs"]}
    assert curation.decontaminate(tasks, ifeval, fields, 9)[0] == tasks
    copied = {**tasks[1], "task_text": f"{tasks[1]['task_text']} {ifeval[7]}"}  # an IFEval request copied in
    kept, removed = curation.decontaminate([tasks[0], copied], ifeval, fields, 9)
    assert kept == [tasks[0]] and [r["id"] for r in removed] == [copied["id"]]


# --------------------------------------------------------------------------------------------
# Splits and ids
def test_splits_follow_rl_share_and_never_send_untested_code_to_rl():
    assert {t["split"] for t in mapped("taco", rl_share=0.0)[0]} == {"sft"}
    assert {t["split"] for t in mapped("taco", rl_share=1.0)[0]} == {"rl"}
    assert {t["split"] for t in mapped("open_code_reasoning", rl_share=1.0)[0]} == {"sft"}
    assert {t["split"] for t in mapped("aime24", rl_share=1.0)[0]} == {"bench"}
    assert {t["split"] for t in mapped("aime24", task_split="sft")[0]} == {"sft"}
    with pytest.raises(ValueError, match="rl_share"):
        mapped("taco", rl_share=1.5)


def test_ids_are_stable_and_keyed_by_the_problem():
    first, second = mapped("numina_math_cot")[0], mapped("numina_math_cot")[0]
    assert [t["id"] for t in first] == [t["id"] for t in second]
    assert mapped("swe_fixer")[0][0]["id"] == S.map_rows("swe_fixer", rows_of("swe_fixer")[:1])[0][0]["id"]


def test_unknown_source_names_the_known_ones():
    with pytest.raises(KeyError, match="acemath_instruct"):
        S.map_rows("no_such_source", [])


# --------------------------------------------------------------------------------------------
# Parsers
@pytest.mark.parametrize("text,choices", [
    ("Q?\nA: x\nB: y\nC: z", ["x", "y", "z"]),
    ("Q?\n(A) 1 m\n(B) 2 m", ["1 m", "2 m"]),
    ("Q?\nA. red\nB. blue\n\nNote: pick one.", ["red", "blue"]),
    ("A) old list\nB) old\nThen:\nA) new\nB) newer\nC) newest", ["new", "newer", "newest"]),  # the last run
    ("Q?\nA) only one option", []),         # one option is no choice
    ("Q?\nB) starts at B\nC) then C", []),  # options start at A
    ("What is 2 + 2?", []),
])
def test_parse_choices(text, choices):
    assert S.parse_choices(text) == choices


def test_reverse_patch_undoes_the_swe_smith_bug():
    bug = rows_of("swe_smith")[0]["patch"]
    fix = mapped("swe_smith")[0][0]["gold_patch"]
    path = "pygments/lexers/python.py"
    bug_change, fix_change = parse_patch(bug)[path], parse_patch(fix)[path]
    # the fix removes what the bug added and adds back what it removed
    assert (fix_change.removed, fix_change.added) == (bug_change.added, bug_change.removed)
    assert parse_patch(S.reverse_patch(fix)) == parse_patch(bug)
    assert swe_reward(f"```diff\n{fix}```", fix) == 1.0


def test_reverse_patch_keeps_no_newline_markers_and_new_files():
    patch = ("--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n a\n-b\n"
             "\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
    assert S.reverse_patch(patch) == ("--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n a\n-c\n"
                                      "\\ No newline at end of file\n+b\n\\ No newline at end of file\n")
    added = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+x = 1\n+y = 2\n"
    assert S.reverse_patch(added) == "--- a/new.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-x = 1\n-y = 2\n"
    assert S.patch_files(S.reverse_patch(added)) == ["new.py"]


def test_benchmark_texts_are_the_text_fields():
    assert S.benchmark_texts("math500", rows_of("math500")) == [r["problem"] for r in rows_of("math500")]
    assert S.benchmark_texts("gpqa_diamond", rows_of("gpqa_diamond"))[0].startswith("Two quantum states")


def test_load_source_without_datasets_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
        S.load_source("math500")


# --------------------------------------------------------------------------------------------
# Kedro datasets on local JSON through datasets.load_dataset('json', data_files=...)
def _local(name: str, **extra) -> dict:
    return {"name": name, "builder": "json", "data_files": str(FIXTURES / f"{name}.jsonl"), **extra}


def test_hf_source_dataset_loads_maps_concatenates_and_quarantines(tmp_path):
    pytest.importorskip("datasets")
    from nemotron_cascade.datasets.hf_source import HFSourceDataset

    quarantine = tmp_path / "quarantine" / "code.jsonl"
    dataset = HFSourceDataset(sources=[_local("taco"), _local("apps", limit=1), _local("livecodebench")],
                              rl_share=0.0, quarantine_filepath=str(quarantine),
                              load_args={"cache_dir": str(tmp_path / "hf")})
    tasks = dataset.load()
    assert [t["source"] for t in tasks] == ["taco", "taco", "apps", "livecodebench"]
    assert [t["split"] for t in tasks] == ["sft", "sft", "sft", "bench"]
    assert tasks[:2] == mapped("taco", rl_share=0.0)[0]  # the same rows as read with json.loads
    assert all(validate_row("task.code", t) is None for t in tasks)
    written = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert written == dataset.last_rejects
    assert [(r["source"], r["row"], r["field"]) for r in written] == [
        ("taco", 2, "input_output"), ("livecodebench", 1, "public_test_cases")]


@pytest.mark.parametrize("name", sorted(NEW_SOURCES))
def test_new_sources_read_through_load_dataset_map_like_their_json_rows(name, tmp_path):
    """Arrow's typing of the fixture (nested messages, structs, lists) changes nothing the mappers read."""
    pytest.importorskip("datasets")
    local = _local(name)
    got = S.load_source(name, builder=local["builder"], data_files=local["data_files"], rl_share=0.5,
                        cache_dir=str(tmp_path / "hf"))
    assert got == mapped(name, rl_share=0.5)


def test_hf_source_dataset_fails_when_a_source_loses_too_many_rows(tmp_path):
    pytest.importorskip("datasets")
    from kedro.io.core import DatasetError

    from nemotron_cascade.datasets.hf_source import HFSourceDataset

    dataset = HFSourceDataset(sources=[_local("apps")], max_reject_share=0.25,
                              load_args={"cache_dir": str(tmp_path / "hf")})
    with pytest.raises(DatasetError, match=r"apps: 1 of 2 rows rejected .*fn_name='double'"):
        dataset.load()


def test_hf_source_dataset_is_load_only_and_checks_names():
    from kedro.io.core import DatasetError

    from nemotron_cascade.datasets.hf_source import HFBenchmarkTextsDataset, HFSourceDataset

    with pytest.raises(DatasetError, match="load-only"):
        HFSourceDataset(sources=["taco"]).save([])
    with pytest.raises(KeyError, match="unknown source"):
        HFSourceDataset(sources=["tacoo"])
    with pytest.raises(DatasetError, match="allowed keys"):
        HFSourceDataset(sources=[{"name": "taco", "limt": 3}])
    with pytest.raises(DatasetError, match="not benchmarks"):
        HFBenchmarkTextsDataset(benchmarks=["taco"])


def test_hf_benchmark_texts_dataset_reads_the_text_fields(tmp_path):
    pytest.importorskip("datasets")
    from nemotron_cascade.datasets.hf_source import HFBenchmarkTextsDataset

    dataset = HFBenchmarkTextsDataset(benchmarks=[_local("math500"), _local("ifeval")],
                                      load_args={"cache_dir": str(tmp_path / "hf")})
    assert dataset.load() == [r["problem"] for r in rows_of("math500")] + [r["prompt"] for r in rows_of("ifeval")]


# --------------------------------------------------------------------------------------------
# conf/gpu: the catalog declares source.<domain> from sources of that domain, and decontaminates
# against every benchmark the project maps
def test_gpu_catalog_names_sources_of_their_domain_and_every_benchmark():
    catalog = _gpu_catalog()
    sources = {k: v for k, v in catalog.items() if k.startswith("source.")}
    assert sources, "conf/gpu/catalog.yml declares no source.<domain>"
    for key, entry in sources.items():
        names = [s if isinstance(s, str) else s["name"] for s in entry["sources"]]
        assert names and all(S.get_spec(n).domain == key.removeprefix("source.") for n in names), key
    assert set(catalog["external_benchmarks"]["benchmarks"]) == set(S.BENCHMARKS)


def test_if_rl_trains_on_the_training_source_and_ifeval_stays_the_benchmark(tmp_path):
    """IF-RL reads rl_prompts: the gpu catalog's instruction-following rows there come from the IF
    training source only; IFEval's rows are the benchmark and never share a prompt with them."""
    pytest.importorskip("datasets")
    from nemotron_cascade.datasets.hf_source import HFSourceDataset
    from nemotron_cascade.pipelines.data_curation.nodes import split_tasks

    entry = _gpu_catalog()["source.instruction_following"]
    entries = [{"name": e} if isinstance(e, str) else e for e in entry["sources"]]
    training = [e["name"] for e in entries if e["name"] in S.SOURCES]
    assert training == ["if_multi_constraints"] and entry["rl_share"] > 0
    assert all("task_split" not in e for e in entries if e["name"] in S.BENCHMARKS)  # no benchmark turned into training
    dataset = HFSourceDataset(sources=[_local(e["name"]) for e in entries], rl_share=1.0,
                              load_args={"cache_dir": str(tmp_path / "hf")})
    splits = split_tasks(dataset.load(), [])
    assert {t["source"] for t in splits["rl_prompts"]} == {"if_multi_constraints"}
    assert len(splits["rl_prompts"]) == len(mapped("if_multi_constraints")[0])
    assert {t["source"] for t in splits["benchmark"]} == {"ifeval"} and not splits["sft_prompts"]
    assert not {t["prompt"] for t in splits["rl_prompts"]} & {t["prompt"] for t in splits["benchmark"]}


def _gpu_catalog() -> dict:
    """conf/gpu/catalog.yml as Kedro resolves it (its runtime parameters at their defaults)."""
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    resolved = OmegaConfigLoader(conf_source=str(ROOT / "conf"), env="gpu", **settings.CONFIG_LOADER_ARGS)["catalog"]
    return {name: resolved[name] for name in yaml.safe_load((ROOT / "conf/gpu/catalog.yml").read_text())}


def test_gpu_catalog_entries_instantiate():
    from kedro.io.core import AbstractDataset

    catalog = _gpu_catalog()
    for name, config in catalog.items():
        dataset = AbstractDataset.from_config(name, copy.deepcopy(config))
        assert dataset._describe()


def test_a_mapped_row_that_breaks_the_schema_is_rejected_not_written():
    # "$ $" survives the column check but cleans to an empty answer: task.math refuses it
    rows = _mutated("acemath_instruct", 0, lambda r: r.update(answer="$ $"))
    tasks, rejects = S.map_rows("acemath_instruct", rows)
    assert len(tasks) == 1 and rejects[0]["row"] == 0
    assert "mapped row breaks task.math: field 'answer'" in rejects[0]["reason"]
