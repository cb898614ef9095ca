"""The dataset teacher: the sources' own responses, per-mode model fallbacks, the mode plan, k > 1.

(The openai fallback over HTTP and its cache: tests/generation/test_teachers.py; the cache of a
fallback through the curation node's path: tests/data/test_teacher_cache.py.)
"""

from __future__ import annotations

import pytest

from nemotron_cascade.data import sft
from nemotron_cascade.generation.dataset_teacher import DatasetTeacherError, references
from nemotron_cascade.generation.teachers import BatchTeacher, make_teacher, teacher_from_config

THINKING = "<think>\nsix times seven\n</think>\n\nThe answer is \\boxed{42}."
PLAIN = "The answer is \\boxed{42}."


def _row(name: str, **refs) -> dict:
    row = {"id": f"src-{name}", "domain": "math", "split": "sft", "source": f"source_{name}", "prompt": f"Q {name}?"}
    return {**row, "reference_responses": refs} if refs else row


BOTH, THINK_ONLY, PLAIN_ONLY, NONE = _row("both", thinking=THINKING, plain=PLAIN), _row("think", thinking=THINKING), \
    _row("plain", plain=PLAIN), _row("none")


class Model(BatchTeacher):
    """A model teacher's stand-in: ``<name>:<row id>:<mode>#j``, recording what it was asked."""

    def __init__(self, name: str):
        self.name, self.asked, self.identity = name, [], {"model": name}

    def respond(self, rows, thinking, k=1):
        self.asked += [(r["id"], m) for r, m in zip(rows, thinking)]
        return [[f"{self.name}:{r['id']}:{'think' if m else 'plain'}#{j}" for j in range(k)]
                for r, m in zip(rows, thinking)]


# (row, thinking, options) -> the answers from the data (None: the fallback is asked), and why
FROM_DATA = [
    (BOTH, True, {}, [THINKING], "its thinking reference"),
    (BOTH, False, {}, [PLAIN], "its plain reference, not one derived from the trace"),
    (THINK_ONLY, True, {}, [THINKING], "its thinking reference"),
    (THINK_ONLY, False, {}, [PLAIN], "plain_from_thinking: the answer after </think>"),
    (THINK_ONLY, False, {"plain_from_thinking": False}, None, "derivation off: the fallback"),
    (PLAIN_ONLY, True, {}, None, "no trace to give: the fallback"),
    (PLAIN_ONLY, False, {}, [PLAIN], "its plain reference"),
    (NONE, True, {}, None, "no reference: the fallback"),
    (NONE, True, {"skip_missing": True}, None, "skip only without a fallback for the mode: the fallback"),
    (NONE, False, {"fallback": {"thinking": Model("r1")}, "skip_missing": True}, [], "no plain fallback: skipped"),
    (PLAIN_ONLY, True, {"fallback": None, "skip_missing": True}, [], "no fallback at all: skipped"),
]


@pytest.mark.parametrize("row, thinking, options, expected, why", FROM_DATA, ids=[c[-1] for c in FROM_DATA])
def test_what_a_request_is_answered_with(row, thinking, options, expected, why):
    teacher = make_teacher("dataset", **{"fallback": Model("m"), **options})
    assert teacher.from_data(row, thinking) == expected, why


def test_the_fallback_of_each_mode_answers_only_the_rest_with_k_answers():
    r1, v3 = Model("r1"), Model("v3")
    teacher = make_teacher("dataset", fallback={"thinking": r1, "plain": v3}, plain_from_thinking=False)
    rows = [BOTH, THINK_ONLY, PLAIN_ONLY, NONE, NONE]
    modes = [True, False, True, True, False]
    got = teacher.respond(rows, modes, 2)
    assert got == [[THINKING], ["v3:src-think:plain#0", "v3:src-think:plain#1"],
                   ["r1:src-plain:think#0", "r1:src-plain:think#1"], ["r1:src-none:think#0", "r1:src-none:think#1"],
                   ["v3:src-none:plain#0", "v3:src-none:plain#1"]]
    assert r1.asked == [("src-plain", True), ("src-none", True)] and v3.asked == [("src-think", False),
                                                                                  ("src-none", False)]


def test_one_fallback_for_both_modes_is_asked_once_per_batch():
    model = Model("m")
    teacher = make_teacher("dataset", fallback=model, follow_references=False)
    teacher.respond([NONE, PLAIN_ONLY, NONE], [True, True, False], 1)
    assert model.asked == [("src-none", True), ("src-plain", True), ("src-none", False)]  # one call, in order


def test_k_gives_a_reference_once_and_a_model_k_times():
    """k > 1: a reference is one sample (``<row>-think``, no index): k copies would weigh it k times and
    add exact duplicates; the fallback's k answers are k samples ``-0``, ``-1``."""
    teacher = make_teacher("dataset", fallback=Model("m"))
    requests = [(BOTH, True), (NONE, True)]
    samples = sft.samples_from_responses(requests, teacher.respond([r for r, _ in requests], [True, True], 3))
    assert [s["id"] for s in samples] == ["src-both-think", "src-none-think-0", "src-none-think-1", "src-none-think-2"]
    assert samples[0]["messages"][-1]["content"] == THINKING and samples[0]["thinking"] is True


def test_without_a_fallback_the_error_names_the_rows_their_source_and_the_setting():
    teacher = make_teacher("dataset")
    assert not teacher.cacheable  # nothing to cache: answers from the data only
    with pytest.raises(DatasetTeacherError) as e:
        teacher.respond([BOTH, PLAIN_ONLY, NONE], [True, True, False], 1)
    message = str(e.value)
    assert "2 requests have no reference response in their mode and no fallback" in message
    assert "src-plain (source_plain, thinking)" in message and "src-none (source_none, plain)" in message
    assert "teacher.backends.dataset.fallback" in message and "teacher.backends.dataset.skip_missing: true" in message


@pytest.mark.parametrize("refs, says", [
    ({"thinking": "no trace here"}, "reference_responses.thinking is not a closed <think> block"),
    ({"thinking": "<think>\nunclosed"}, "reference_responses.thinking is not a closed <think> block"),
    ({"plain": "<think>\nx\n</think>\n\ny"}, "reference_responses.plain is not an answer without a <think> block"),
    ({"plain": ""}, "reference_responses.plain is not an answer"),
    ({"chosen": PLAIN}, "reference_responses must be"),
    ("just a string", "reference_responses must be"),
])
def test_a_malformed_reference_is_an_error_naming_the_row(refs, says):
    row = {**NONE, "reference_responses": refs}
    with pytest.raises(DatasetTeacherError, match="row 'src-none' \\(source source_none\\)") as e:
        references(row)
    assert says in str(e.value)


# drawn requests -> the plan with follow_references (default) and why
PLANS = [
    ([(PLAIN_ONLY, True)], [(PLAIN_ONLY, False)], "plain answers only: the plain sample, not the thinking model"),
    ([(THINK_ONLY, False)], [(THINK_ONLY, False)], "plain derived from the trace: stays plain"),
    ([(NONE, True)], [(NONE, True)], "no reference: the drawn mode, for the fallback"),
    ([(PLAIN_ONLY, True), (PLAIN_ONLY, False)], [(PLAIN_ONLY, False)], "both modes drawn: one per answerable mode"),
    ([(BOTH, True), (BOTH, False)], [(BOTH, True), (BOTH, False)], "both answerable: both kept"),
]


@pytest.mark.parametrize("drawn, planned, why", PLANS, ids=[c[-1] for c in PLANS])
def test_follow_references_moves_a_request_to_the_mode_its_source_answers(drawn, planned, why):
    assert make_teacher("dataset", fallback=Model("m")).plan(drawn) == planned, why


def test_without_follow_references_the_drawn_modes_stay():
    drawn = [(PLAIN_ONLY, True), (PLAIN_ONLY, False), (THINK_ONLY, False)]
    assert make_teacher("dataset", follow_references=False).plan(drawn) == drawn
    assert make_teacher("oracle").plan(drawn) == drawn  # every other teacher: unchanged


def test_fallbacks_are_built_from_the_backend_blocks_by_name():
    backends = {"dataset": {"fallback": {"thinking": "openai", "plain": "openai_plain"}},
                "openai": {"base_url": "http://127.0.0.1:9/v1", "model": "deepseek-ai/DeepSeek-R1-0528"},
                "openai_plain": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                                 "model": "deepseek-ai/DeepSeek-V3-0324"}}
    teacher = teacher_from_config("dataset", backends)
    assert teacher.fallbacks[True].body["model"] == "deepseek-ai/DeepSeek-R1-0528"
    assert teacher.fallbacks[False].body["model"] == "deepseek-ai/DeepSeek-V3-0324"
    assert teacher.cacheable and teacher.identity["fallback"]["plain"]["model"] == "deepseek-ai/DeepSeek-V3-0324"
    same = teacher_from_config("dataset", {**backends, "dataset": {"fallback": "openai"}})
    assert same.fallbacks[True] is same.fallbacks[False]  # one name, one teacher


@pytest.mark.parametrize("backends, says", [
    ({"dataset": {"fallback": "nowhere"}}, "fallback names 'nowhere'"),
    ({"dataset": {"fallback": "dataset"}}, "fallback names 'dataset'"),
    ({"dataset": {"fallback": {"think": "openai"}}}, "got keys \\['think'\\]"),
])
def test_a_bad_fallback_name_is_an_error(backends, says):
    with pytest.raises(ValueError, match=says):
        teacher_from_config("dataset", backends)


def test_a_fallback_name_needs_the_backend_blocks():
    with pytest.raises(DatasetTeacherError, match="teacher_from_config"):
        make_teacher("dataset", fallback="openai")
