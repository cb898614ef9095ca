"""Teacher-response filters: each planted flaw is removed by the filter meant for it, with its
reason, and good samples pass; the data card counts both."""

import re

import pytest

from nemotron_cascade.data import card, filters, sft, world

CONFIG = dict(max_chars=2000, correctness={"math": 1.0, "science": 1.0, "swe": 0.5, "instruction_following": 1.0},
              cross_check={"backend": "none"})


@pytest.fixture(scope="module")
def good():
    rows = [r for d in ("math", "science", "general", "instruction_following", "swe")
            for r in world.generate_tasks(d, "sft", 12, 0)]
    samples = sft.teacher_samples(rows, 0.6, 0.2, 0, world.oracle_response)
    return samples, {r["id"]: r for r in rows}


def _sample(content, domain="math", thinking=True, task="t"):
    return {"id": f"{task}-think", "domain": domain, "thinking": thinking, "tools": None,
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]}


TABLE = [
    ("empty response", "", "format", "empty response"),
    ("think block never closed", "<think>\nwork", "format", "think block never closed"),
    ("nothing after the think block", "<think>\nwork\n</think>\n", "format", "empty final answer"),
    ("looping answer", "ok " + "this sentence goes round and round. " * 4, "repetition", "occurs 4 times"),
    ("too long", "<think>\nx\n</think>\n\n" + " ".join(f"n{i}" for i in range(600)) + " \\boxed{3}",
     "length", "> 2000"),
    ("wrong answer", "<think>\n1+1\n</think>\n\n\\boxed{3}", "correctness", "math verifier scored 0.00"),
    ("right answer passes", "<think>\n1+1\n</think>\n\n\\boxed{2}", None, None),
]


@pytest.mark.parametrize("name,content,filter_name,reason", TABLE, ids=[t[0] for t in TABLE])
def test_each_filter_removes_its_flaw(name, content, filter_name, reason):
    task = {"id": "t", "domain": "math", "split": "sft", "prompt": "1+1?", "answer": "2"}
    kept, removed, _ = filters.filter_samples([_sample(content)], {"t": task}, filters.FilterConfig(**CONFIG))
    if filter_name is None:
        assert len(kept) == 1 and removed == []
    else:
        assert kept == [] and removed[0]["filter"] == filter_name and reason in removed[0]["reason"]


def test_swe_localisation_and_test_syntax():
    swe_problem = world.get_domain("swe").sample_check  # the SWE filter, from the world's registry
    task = {"id": "t", "domain": "swe", "file": "a.py", "context_files": ["b.py"], "gold_patch": ""}
    assert "localisation recall 0" in swe_problem(_sample("x", "swe"), task)
    task["context_files"] = ["a.py"]
    assert swe_problem(_sample("```python\ndef test_x(:\n```", "swe"), task).startswith("python block 1 does not parse")
    assert swe_problem(_sample("```python\ndef test_x():\n    assert f(1) == 2\n```", "swe"), task) is None
    kept, removed, _ = filters.filter_samples([_sample("x", "swe")], {"t": {**task, "context_files": ["b.py"]}},
                                              filters.FilterConfig())
    assert kept == [] and removed[0]["filter"] == "swe"  # the filter is named after its domain


def test_planted_flaws_are_all_removed_and_oracle_samples_all_kept(good):
    samples, tasks = good
    planted = filters.plant_flaws(samples, per_kind=2, seed=0, max_chars=2000)
    kinds = {s["planted"] for s in planted if s.get("planted")}
    assert kinds == {"wrong_answer", "unclosed_think", "empty_answer", "repetition", "too_long", "wrong_patch"}
    kept, removed, checked = filters.filter_samples(planted, tasks, filters.FilterConfig(**CONFIG))
    assert kept == samples
    assert sorted(r["planted"] for r in removed) == sorted(s["planted"] for s in planted if s.get("planted"))
    assert checked["math"] == sum(s["domain"] == "math" for s in planted) - 2  # the unclosed ones failed format first
    md, metrics, fig, table = card.build_card({"teacher": planted, "filtered": kept}, removed, [],
                                              {"planted": card.planted_check(removed, {"wrong_answer": 2}),
                                               "notes": {}})
    assert "| wrong_answer | 2 | 2 |" in md and "Removed without being planted: none." in md
    assert metrics["card/removed/filter/correctness"] >= 2 and metrics["card/filtered/math/rows"] > 0


def test_cross_check_removes_disagreement():
    task = {"id": "t", "domain": "math", "split": "sft", "prompt": "1+1?", "answer": "2"}
    cfg = filters.FilterConfig(cross_check={"backend": "second", "domains": ["math"]})
    ok = _sample("<think>\n1+1\n</think>\n\n\\boxed{2}")
    kept, removed, _ = filters.filter_samples([ok], {"t": task}, cfg, lambda rows, modes: ["\\boxed{5}"])
    assert kept == [] and removed[0]["filter"] == "cross_check"
    kept, _, _ = filters.filter_samples([ok], {"t": task}, cfg, lambda rows, modes: ["\\boxed{2}"])
    assert kept == [ok]
    with pytest.raises(ValueError, match="no second teacher"):
        filters.filter_samples([ok], {"t": task}, cfg)


def test_config_errors_name_the_field():
    with pytest.raises(KeyError, match="without a verifier"):
        filters.FilterConfig(correctness={"poetry": 1.0})
    with pytest.raises(KeyError, match="needs a backend"):
        filters.FilterConfig(cross_check={})


def test_card_counts_tokens_with_a_real_tokenizer(tokenizer, tmp_path, good):
    """The gpu profile counts tokens with its base model's tokenizer (here the tiny one, saved)."""
    tokenizer.save_pretrained(tmp_path)
    count = card.token_counter(str(tmp_path))
    samples, _ = good
    text = card.text_of(samples[0])
    assert count(text) == len(tokenizer(text, add_special_tokens=False)["input_ids"]) > len(text.split()) / 4
    md, metrics, _, table = card.build_card({"teacher": samples}, [], [], {"notes": {}}, count, "tiny tokens")
    assert "tokens counted as tiny tokens" in md
    assert sum(r["tokens"] for r in table) == sum(count(card.text_of(s)) for s in samples)


def test_unverifiable_tasks_skip_the_correctness_filter():
    """OpenCodeReasoning rows have no tests and free-form science rows no choice letter: their
    verifiers cannot grade them (the code verifier refuses an empty test list), so they are kept
    unchecked rather than crashing the filter."""
    from nemotron_cascade.data.filters import FilterConfig, filter_samples

    task = {"id": "open_code_reasoning-1", "domain": "code", "split": "sft", "prompt": "Sum two numbers.",
            "tests": [], "verifiable": False}
    sample = {"id": "open_code_reasoning-1-think", "task_id": task["id"], "domain": "code", "thinking": True,
              "messages": [{"role": "user", "content": task["prompt"]},
                           {"role": "assistant", "content": "print(sum(map(int, input().split())))"}]}
    kept, removed, checked = filter_samples([sample], {task["id"]: task}, FilterConfig(correctness={"code": 1.0}))
    assert kept == [sample] and removed == [] and checked == {"code": 0}


@pytest.mark.parametrize("weights, error, why", [
    ({"math": 1.0, "instruction_following": 1.0}, None, "a known domain whose samples were all filtered out"),
    ({"math": 1.0, "maths": 1.0}, "blend weights name sources that do not exist: ['maths']", "a typo"),
])
def test_the_blend_names_typos_and_warns_about_empty_domains(weights, error, why, caplog):
    from nemotron_cascade.data.sft import build_blend

    math = [{"id": f"m{i}", "domain": "math"} for i in range(3)]
    if error:
        with pytest.raises(KeyError, match=re.escape(error)):
            build_blend({"math": math}, weights, 0)
        return
    assert sorted(s["id"] for s in build_blend({"math": math}, weights, 0)) == ["m0", "m1", "m2"], why
    assert "domain 'instruction_following' has no sample left" in caplog.text
