"""The standard harness (evaluation/harness.py, harness_lcb.py, pipelines/evaluation/harness_nodes.py).

The mapping, the LiveCodeBench task's parts, the nodes' wiring and the profiles run everywhere. The
runs through lm-eval itself need the gpu environment's lm-eval (requirements/gpu.txt), which the
CPU environment does not install (its math extra pins antlr4 4.11, which the project's math verifier
reads at 4.13 there): they are skipped without it and run, offline, in a venv of the gpu set.

Local copies of the benchmarks, built from tests/data/fixtures/sources (whose cards the fixtures'
README names) into the layout of the dataset each lm-eval task reads:

| column | lm-eval reads | built from |
|---|---|---|
| aime24 | Maxwell-Jia/AIME_2024 (`ID`, `Problem`, `Solution`, `Answer`) | aime24.jsonl (H4/aime_2024), renamed |
| math500 | HuggingFaceH4/MATH-500 | math500.jsonl as it is |
| gpqa_diamond | Idavidrein/gpqa, gpqa_diamond | gpqa_diamond.jsonl as it is |
| ifeval | google/IFEval | ifeval.jsonl as it is |
| livecodebench | code_generation_lite `test*.jsonl` | livecodebench.jsonl; row 1's private tests compressed |
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pandas as pd
import pytest

from nemotron_cascade.data.sources.fields import RowError
from nemotron_cascade.evaluation import harness, harness_lcb
from nemotron_cascade.pipelines.evaluation import harness_nodes, nodes

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "sources"
CONF = Path(__file__).resolve().parents[2] / "conf"
# a correct stdin program for the fixture's "A. Short Sort" (one swap at most turns the row into abc)
SHORT_SORT = ("```python\nt = int(input())\nfor _ in range(t):\n    s = input().strip()\n"
              "    print('YES' if sum(a != b for a, b in zip(s, 'abc')) <= 2 else 'NO')\n```")
PRIVATE = [{"input": "2\nabc\ncba\n", "output": "YES\nYES\n", "testtype": "stdin"}]


def _compressed(value) -> str:
    """LiveCodeBench's compressed test column: base64 of zlib of a pickle."""
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


# --- the mapping of lm-eval's results to matrix columns

RESULTS = {"aime24": {"alias": "aime24", "exact_match,none": 0.1333, "exact_match_stderr,none": 0.06},
           "gpqa_diamond_cot_zeroshot": {"exact_match,strict-match": 0.2, "exact_match,flexible-extract": 0.41414}}


@pytest.mark.parametrize("tasks, expected, why", [
    ({"aime24": harness.DEFAULT_TASKS["aime24"]}, {"harness/aime24": 0.1333}, "metric,filter none"),
    ({"gpqa_diamond": harness.DEFAULT_TASKS["gpqa_diamond"]}, {"harness/gpqa_diamond": 0.4141},
     "the named filter, not strict-match; rounded to 4 places"),
    ({"ifeval": harness.DEFAULT_TASKS["ifeval"]}, {}, "a task lm-eval did not run gives no column"),
    ({"x": {"task": "aime24", "metric": "exact_match", "domain": "math"}}, {"harness/x": 0.1333},
     "no filter named: lm-eval's 'none'"),
])
def test_results_map_to_matrix_columns(tasks, expected, why):
    assert harness.to_columns(RESULTS, tasks) == expected, why


def test_a_metric_the_task_did_not_report_names_what_it_did():
    spec = {"task": "aime24", "metric": "pass@1", "filter": "none", "domain": "math"}
    with pytest.raises(KeyError, match=r"no 'pass@1,none' \(column aime24\).*exact_match,none"):
        harness.to_columns(RESULTS, {"aime24": spec})


def test_tasks_are_grouped_by_their_domains_thinking_mode():
    thinking = {"math": True, "science": True, "code": True, "instruction_following": False}
    groups = harness.by_mode(harness.DEFAULT_TASKS, thinking)
    assert sorted(groups[True]) == ["aime24", "gpqa_diamond", "livecodebench", "math500"]
    assert sorted(groups[False]) == ["ifeval"]
    assert list(harness.by_mode(harness.DEFAULT_TASKS, {})) == [True]  # a mode left unset is thinking


@pytest.mark.parametrize("tasks, error", [
    ({"aime24": {"task": "aime24", "metric": "exact_match"}}, "missing keys \\['domain'\\]"),
    ({"aime24": {**harness.DEFAULT_TASKS["aime24"], "metrc": "x"}}, "unknown keys \\['metrc'\\]"),
])
def test_a_task_spec_with_a_typo_or_a_gap_is_refused(tasks, error):
    with pytest.raises(ValueError, match=error):
        harness.HarnessConfig(tasks=tasks)


def test_a_wrongly_typed_setting_is_refused():
    with pytest.raises(ValueError, match="limit must be int | None"):
        harness.HarnessConfig(limit="ten")


def test_columns_join_the_matrix_only_when_some_checkpoint_has_them():
    table = pd.DataFrame([{"stage": "base", "math": 0.1}, {"stage": "sft", "math": 0.5}])
    assert harness.add_columns(table, [{"math": 0.1}, {"math": 0.5}]) is table  # base profile: unchanged
    out = harness.add_columns(table, [{"math": 0.1}, {"math": 0.5, "harness/aime24": 0.2, "harness/ifeval": 0.7}])
    assert list(out.columns) == ["stage", "math", "harness/aime24", "harness/ifeval"]
    assert out["harness/aime24"].tolist()[1] == 0.2 and pd.isna(out["harness/aime24"].tolist()[0])
    assert list(table.columns) == ["stage", "math"]  # the input is not modified


# --- the profiles: off in base and test, on in gpu


def _params(env: str) -> dict:
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    return OmegaConfigLoader(conf_source=str(CONF), env=env, **settings.CONFIG_LOADER_ARGS)["parameters"]


@pytest.mark.parametrize("env, enabled", [("base", False), ("test", False), ("gpu", "auto")])
def test_the_harness_is_on_in_the_gpu_profile_only(env, enabled):
    cfg = harness.HarnessConfig(**_params(env)["evaluation_harness"])
    assert cfg.enabled == enabled
    assert cfg.tasks == harness.DEFAULT_TASKS  # the five benchmarks of the paper's table, in every profile
    if enabled:
        assert cfg.backend == "vllm" and cfg.model_args["max_model_len"] > _params(env)["evaluation"]["max_new_tokens"]


@pytest.mark.parametrize("enabled, backend, lm_eval, cuda, active, why", [
    (False, "vllm", True, True, False, "off is off, whatever is installed"),
    (True, "vllm", False, False, True, "on is on: a missing lm-eval then fails loudly in the node"),
    ("auto", "vllm", True, True, True, "the gpu environment on a GPU machine"),
    ("auto", "vllm", False, True, False, "no lm-eval (the CPU environment)"),
    ("auto", "vllm", True, False, False, "vLLM without a CUDA device (the gpu profile's CPU smoke run)"),
    ("auto", "hf", True, False, True, "transformers' backend runs on the CPU"),
])
def test_auto_turns_the_harness_on_where_the_gpu_environment_is(monkeypatch, enabled, backend, lm_eval, cuda,
                                                                 active, why):
    import importlib.util

    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if lm_eval else None) if name == "lm_eval" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert harness.HarnessConfig(enabled=enabled, backend=backend).active() is active, why


def test_enabled_takes_true_false_or_auto_only():
    with pytest.raises(ValueError, match="enabled must be true, false or auto"):
        harness.HarnessConfig(enabled="on")


# --- the nodes


def test_off_the_evaluate_node_returns_the_plain_nodes_result(monkeypatch):
    sentinel = ({"math": 0.5}, [{"id": 1}])
    monkeypatch.setattr(nodes, "evaluate_policy", lambda policy, benchmark, evaluation: sentinel)
    monkeypatch.setattr(harness, "evaluate_checkpoint", lambda *a: pytest.fail("the harness ran while off"))
    metrics, records = harness_nodes.evaluate_policy(object(), [], None, harness.HarnessConfig())
    assert metrics is sentinel[0] and records is sentinel[1]


def test_on_the_evaluate_node_adds_the_harness_columns_of_the_checkpoint_directory(monkeypatch):
    from nemotron_cascade.datasets.checkpoint import Checkpoint
    from nemotron_cascade.evaluation.benchmarks import EvalConfig

    calls = []
    monkeypatch.setattr(nodes, "evaluate_policy", lambda policy, benchmark, evaluation: ({"math": 0.5}, []))
    monkeypatch.setattr(harness, "evaluate_checkpoint",
                        lambda path, thinking, cfg, n: calls.append((path, thinking, n)) or {"harness/x": 1.0})
    import torch

    policy = Checkpoint(model=torch.nn.Linear(2, 2), tokenizer=None, lineage={"path": "/ckpt/v1/policy"})
    evaluation = EvalConfig(max_new_tokens=99)
    metrics, _ = harness_nodes.evaluate_policy(policy, [], evaluation, harness.HarnessConfig(enabled=True))
    assert metrics == {"math": 0.5, "harness/x": 1.0}
    assert calls == [("/ckpt/v1/policy", evaluation.thinking, 99)]  # max_gen_toks: the evaluation budget
    with pytest.raises(ValueError, match="no 'path'"):
        harness_nodes.evaluate_policy(Checkpoint(model=None, tokenizer=None), [], evaluation,
                                      harness.HarnessConfig(enabled=True))


def test_the_report_is_the_plain_one_without_harness_columns_and_extended_with_them():
    metrics = [{"math": 0.25, "response_length": 10.0}, {"math": 0.5, "response_length": 12.0}]
    plain, plain_md, _ = nodes.report_matrix(["base", "sft"], *metrics)
    table, markdown, _ = harness_nodes.report_matrix(["base", "sft"], *metrics)
    assert markdown == plain_md and table.equals(plain)
    metrics[1]["harness/aime24"] = 0.1333
    table, markdown, _ = harness_nodes.report_matrix(["base", "sft"], *metrics)
    assert list(table.columns)[-1] == "harness/aime24"
    assert markdown.splitlines()[0].endswith("| harness/aime24 |") and markdown.splitlines()[-1].endswith("| 0.133 |")


# --- LiveCodeBench's parts


@pytest.mark.parametrize("text, expected, why", [
    (json.dumps(PRIVATE), PRIVATE, "plain JSON (older releases, public tests)"),
    (_compressed(json.dumps(PRIVATE)), PRIVATE, "the compressed release form: a pickled JSON string"),
    (base64.b64encode(zlib.compress(json.dumps(PRIVATE).encode())).decode(), PRIVATE, "zlib of JSON, no pickle"),
])
def test_test_cases_decode(text, expected, why):
    assert harness_lcb.decode_tests(text) == expected, why


@pytest.mark.parametrize("text, why", [
    (_compressed(os.getcwd), "a pickle naming a function (any global) is refused, never called"),
    (_compressed(pd.Timestamp(0)), "a pickle naming a class is refused"),
    ("eJyrVkrOz0tOLVCyUihKTVGqBQA+UgZ4", "a corrupt zlib stream (the sources fixture's row 1)"),
    ("not base64 at all!", "neither JSON nor base64"),
])
def test_test_cases_that_cannot_be_decoded_safely_leave_the_problem_out(text, why):
    with pytest.raises(RowError, match="private_test_cases"):
        harness_lcb.decode_tests(text)


def _lcb_rows() -> list[dict]:
    rows = [json.loads(line) for line in (FIXTURES / "livecodebench.jsonl").read_text().splitlines()]
    rows[0]["private_test_cases"] = _compressed(json.dumps(PRIVATE))
    return rows


def test_the_task_keeps_the_stdin_problems_of_the_window_with_their_private_tests():
    datasets = pytest.importorskip("datasets")
    rows = _lcb_rows()
    docs = harness_lcb.process_docs(datasets.Dataset.from_list(rows))
    assert docs["question_id"] == ["1873_A"]  # the LeetCode (functional) problem is left out
    assert json.loads(docs[0]["tests"])[-1] == {"input": "2\nabc\ncba\n", "output": "YES\nYES\n"}
    assert harness_lcb.in_window(rows[0], "2023-08-01", "2023-08-31")
    assert not harness_lcb.in_window(rows[0], "2024-08-01", None)
    with pytest.raises(ValueError, match="no scorable problem"):
        harness_lcb.process_docs(datasets.Dataset.from_list(rows), since="2024-08-01")


@pytest.mark.parametrize("response, expected", [
    (SHORT_SORT, 1.0),
    (SHORT_SORT.replace("<= 2", "<= 1"), 0.0),  # fails the private test (cba needs two changes)
    ("no program here", 0.0),
])
def test_pass_at_1_runs_the_program_on_public_and_private_tests(response, expected):
    doc = harness_lcb.lcb_doc(_lcb_rows()[0])
    assert "Short Sort" not in harness_lcb.doc_to_text(doc) and "```python" in harness_lcb.doc_to_text(doc)
    assert harness_lcb.process_results(doc, [response]) == {"pass@1": expected}


# --- through lm-eval (the gpu environment's lm-eval; skipped without it)


def _local_tasks(tmp: Path) -> dict:
    """The five columns on the local copies of the table above."""
    aime = [json.loads(line) for line in (FIXTURES / "aime24.jsonl").read_text().splitlines()]
    (tmp / "aime.jsonl").write_text("".join(json.dumps({"ID": f"2024-I-{r['id']}", "Problem": r["problem"],
                                                        "Solution": r["solution"], "Answer": int(r["answer"])}) + "\n"
                                            for r in aime))
    (tmp / "lcb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _lcb_rows()))

    def local(path):
        files = {"train": str(path), "test": str(path)}
        return {"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": files}}

    spec = harness.DEFAULT_TASKS
    return {"aime24": {**spec["aime24"], "overrides": local(tmp / "aime.jsonl")},
            "math500": {**spec["math500"], "overrides": {"num_fewshot": 0, **local(FIXTURES / "math500.jsonl")}},
            "gpqa_diamond": {**spec["gpqa_diamond"], "overrides": local(FIXTURES / "gpqa_diamond.jsonl")},
            "livecodebench": {**spec["livecodebench"], "overrides": {"data_files": [str(tmp / "lcb.jsonl")]}},
            "ifeval": {**spec["ifeval"], "overrides": local(FIXTURES / "ifeval.jsonl")}}


THINKING = {"math": True, "science": True, "code": True, "instruction_following": False}


@pytest.fixture()
def offline(monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _canned_lm(correct: bool):
    """An lm-eval model that answers every fixture item, right (``correct``) or wrong."""
    import re

    from lm_eval.api.model import LM

    def answer(context: str) -> str:
        if "Question: Every morning Aya" in context:
            return "\\boxed{204}" if correct else "\\boxed{205}"
        if "Let $ABC$ be a triangle" in context:
            return "\\boxed{113}" if correct else "\\boxed{7}"
        if "(0,3)" in context:
            return "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}" if correct else "\\boxed{(3, \\pi)}"
        if "513^2" in context:
            return "So $\\boxed{26000}$." if correct else "\\boxed{1000}"
        if "Choices:" in context:
            truth = "10^-4 eV" if "quantum states" in context else "10"
            letters = dict((text.strip(), letter) for letter, text in re.findall(r"\(([A-D])\) (.*)", context))
            pick = letters[truth] if correct else next(v for k, v in letters.items() if k != truth)
            return f"Let's think. The answer is ({pick})."
        if "three cards" in context:
            return SHORT_SORT if correct else "```python\nprint('YES')\n```"
        return "An answer."

    class Canned(LM):
        def generate_until(self, requests, disable_tqdm=False):
            return [answer(r.args[0]) for r in requests]

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

    return Canned()


@pytest.mark.parametrize("correct, expected", [(True, 1.0), (False, 0.0)])
def test_lm_eval_scores_known_answers_through_each_tasks_own_scorer(offline, tmp_path, correct, expected):
    """Right answers score 1 and wrong ones 0 on AIME, MATH-500, GPQA and LiveCodeBench: the
    tasks' prompts, answer extraction and metrics as lm-eval runs them, on the local copies."""
    tasks = {c: s for c, s in _local_tasks(tmp_path).items() if c != "ifeval"}
    cfg = harness.HarnessConfig(enabled=True, tasks=tasks, apply_chat_template=False)
    columns, raw = harness.evaluate(_canned_lm(correct), THINKING, cfg, max_gen_toks=64)
    assert columns == {f"harness/{c}": expected for c in tasks}
    assert {t: len(s) for t, s in raw["samples"].items()} == {}  # no per-item records unless asked


def test_lm_eval_runs_a_real_checkpoint_offline_in_each_domains_mode(offline, tmp_path):
    """lm-eval's HF model on a saved Qwen3 checkpoint (random weights: the scores are chance, the
    plumbing is what is checked): every column, every fixture item, the template's thinking flag
    per domain, and the generation budget."""
    from real_model import save_qwen3_base
    from transformers import AutoTokenizer

    path = save_qwen3_base(tmp_path / "ckpt")
    cfg = harness.HarnessConfig(enabled=True, backend="hf", tasks=_local_tasks(tmp_path), batch_size=4,
                                model_args={"device": "cpu", "dtype": "float32"})
    columns, raw = harness.evaluate(harness.build_lm(str(path), cfg), THINKING, cfg, max_gen_toks=8, samples=True)
    assert set(columns) == {f"harness/{c}" for c in harness.DEFAULT_TASKS}
    assert all(0.0 <= v <= 1.0 for v in columns.values())
    samples = raw["samples"]
    counts = {t: len({s["doc_id"] for s in records}) for t, records in samples.items()}  # a record per filter
    assert counts == {"aime24": 2, "minerva_math500": 2, "gpqa_diamond_cot_zeroshot": 2, "livecodebench": 1,
                      "ifeval": 2}
    tok = AutoTokenizer.from_pretrained(path)
    for task, thinking in [("aime24", True), ("livecodebench", True), ("ifeval", False)]:
        context, gen_kwargs = samples[task][0]["arguments"][0]
        user = context.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
        expected = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=thinking)
        assert context == expected, task
        assert gen_kwargs["max_gen_toks"] == 8
        for response in samples[task][0]["resps"][0]:
            assert len(tok(response, add_special_tokens=False)["input_ids"]) <= 8 + 1  # + a re-tokenisation seam
