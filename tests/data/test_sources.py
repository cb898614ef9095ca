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
}


def test_every_source_and_benchmark_has_a_fixture():
    assert sorted(p.stem for p in FIXTURES.glob("*.jsonl")) == ALL


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
                   "kwargs": [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]}),
    ("swe_bench_verified", 0, {"file": "astropy/modeling/separable.py", "split": "bench"}),
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


def test_llama_nemotron_v1_text_input_is_cut_to_the_user_turn():
    row = dict(rows_of("llama_nemotron_science")[0])
    question = row["input"][0]["content"]
    row["input"] = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\ndetailed thinking on<|eot_id|>"
                    f"<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert S.map_llama_nemotron_science(row)["prompt"] == question


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
    catalog = yaml.safe_load((ROOT / "conf/gpu/catalog.yml").read_text())
    sources = {k: v for k, v in catalog.items() if k.startswith("source.")}
    assert sources, "conf/gpu/catalog.yml declares no source.<domain>"
    for key, entry in sources.items():
        names = [s if isinstance(s, str) else s["name"] for s in entry["sources"]]
        assert names and all(S.get_spec(n).domain == key.removeprefix("source.") for n in names), key
    assert set(catalog["external_benchmarks"]["benchmarks"]) == set(S.BENCHMARKS)


def test_gpu_catalog_entries_instantiate():
    from kedro.io.core import AbstractDataset

    catalog = yaml.safe_load((ROOT / "conf/gpu/catalog.yml").read_text())
    for name, config in catalog.items():
        dataset = AbstractDataset.from_config(name, copy.deepcopy(config))
        assert dataset._describe()


def test_a_mapped_row_that_breaks_the_schema_is_rejected_not_written():
    # "$ $" survives the column check but cleans to an empty answer: task.math refuses it
    rows = _mutated("acemath_instruct", 0, lambda r: r.update(answer="$ $"))
    tasks, rejects = S.map_rows("acemath_instruct", rows)
    assert len(tasks) == 1 and rejects[0]["row"] == 0
    assert "mapped row breaks task.math: field 'answer'" in rejects[0]["reason"]
