"""Resumable teacher generation (data.teacher) and teacher samples that did not change."""

from __future__ import annotations

import json
import logging
import random

import pytest

from nemotron_cascade.data import sft, world
from nemotron_cascade.data.teacher import TeacherGenerationError, cache_path, generate_responses, load_cache
from nemotron_cascade.generation.teachers import BatchTeacher, make_teacher
from nemotron_cascade.pipelines.data_curation.nodes import generate_teacher_responses

ROWS = [r for d in ("math", "code", "general") for r in world.generate_tasks(d, "sft", 4, 0)][:10]
MODES = [i % 3 != 0 for i in range(len(ROWS))]


class CountingTeacher(BatchTeacher):
    """The oracle's answers (k numbered copies), counting requests; fails once ``fail_after`` were answered."""

    def __init__(self, fail_after: int | None = None):
        self.requests, self.fail_after = 0, fail_after

    def respond(self, rows, thinking, k=1):
        if self.fail_after is not None and self.requests + len(rows) > self.fail_after:
            raise ConnectionError("teacher server went away")
        self.requests += len(rows)
        return [[f"{world.oracle_response(r, m)}#{j}" for j in range(k)] for r, m in zip(rows, thinking)]


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_failure_keeps_what_was_finished_and_the_rerun_asks_only_the_rest(tmp_path):
    path = tmp_path / "cache" / "t.jsonl"
    with pytest.raises(TeacherGenerationError, match=r"4 of 10 finished requests are kept in .*t\.jsonl") as e:
        generate_responses(ROWS, MODES, CountingTeacher(fail_after=4), 2, path, batch_size=2)
    assert isinstance(e.value.__cause__, ConnectionError)
    assert len(_lines(path)) == 4  # two batches of two, flushed before the third failed

    teacher = CountingTeacher()
    got = generate_responses(ROWS, MODES, teacher, 2, path, batch_size=2)
    assert teacher.requests == 6
    assert got == CountingTeacher().respond(ROWS, MODES, 2)  # cached and fresh answers in request order
    assert generate_responses(ROWS, MODES, teacher, 2, path) == got and teacher.requests == 6  # all cached


def test_without_a_cache_the_error_says_nothing_was_kept():
    with pytest.raises(TeacherGenerationError, match="not kept .*teacher.cache_dir"):
        generate_responses(ROWS, MODES, CountingTeacher(fail_after=1), 1, None, batch_size=1)


@pytest.mark.parametrize("cut, regenerated", [
    (10, 1),  # a torn last line: dropped with a warning and asked again
    (1, 0),   # only its newline lost: the record is whole, kept, and the newline restored
])
def test_a_torn_last_line_is_handled(tmp_path, caplog, cut, regenerated):
    path = tmp_path / "t.jsonl"
    generate_responses(ROWS, MODES, CountingTeacher(), 1, path, batch_size=4)
    path.write_bytes(path.read_bytes()[:-cut])
    teacher = CountingTeacher()
    with caplog.at_level(logging.WARNING, logger="nemotron_cascade.data.teacher"):
        got = generate_responses(ROWS, MODES, teacher, 1, path, batch_size=4)
    assert teacher.requests == regenerated
    assert ("torn last line" in caplog.text) == bool(regenerated)
    assert got == CountingTeacher().respond(ROWS, MODES, 1)
    assert len(_lines(path)) == len(ROWS)  # every line parses again


def test_a_damaged_line_before_the_end_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    generate_responses(ROWS, MODES, CountingTeacher(), 1, path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3] + ["{oops\n"] + lines[3:]))
    with pytest.raises(ValueError, match="line 4 .*delete it"):
        load_cache(path, 1)


def test_a_changed_row_under_the_same_id_is_asked_again(tmp_path):
    path = tmp_path / "t.jsonl"
    generate_responses(ROWS, MODES, CountingTeacher(), 1, path)
    changed = [{**ROWS[0], "prompt": ROWS[0]["prompt"] + " (reworded)"}] + ROWS[1:]
    teacher = CountingTeacher()
    generate_responses(changed, MODES, teacher, 1, path)
    assert teacher.requests == 1


def test_the_cache_file_is_keyed_by_backend_identity_and_k(tmp_path):
    a = cache_path(tmp_path, "openai", {"model": "m", "temperature": 0.6}, 1)
    assert a == cache_path(tmp_path, "openai", {"temperature": 0.6, "model": "m"}, 1)  # key order is irrelevant
    others = [cache_path(tmp_path, "vllm", {"model": "m", "temperature": 0.6}, 1),
              cache_path(tmp_path, "openai", {"model": "m", "temperature": 1.0}, 1),
              cache_path(tmp_path, "openai", {"model": "m", "temperature": 0.6}, 4)]
    assert len({a, *others}) == 4
    # operational options (concurrency, retries) are not part of what decides the answers
    t1 = make_teacher("openai", base_url="http://h/v1", model="m", concurrency=1, max_retries=0)
    t2 = make_teacher("openai", base_url="http://h/v1", model="m", concurrency=32, max_retries=9)
    assert t1.identity == t2.identity


def _old_teacher_samples(rows, thinking_share, both_modes_share, seed, teacher):
    """teacher_samples as it was before batched teachers (frozen copy, one row at a time)."""
    r, out = random.Random(seed), []
    for row in rows:
        modes = [True, False] if r.random() < both_modes_share else [r.random() < thinking_share]
        out += [sft.to_sample(row, teacher(row, m), m) for m in modes]
    return out


def test_oracle_samples_are_byte_identical_to_the_single_row_version(tmp_path):
    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", 50, 0)]
    options = {"terse_share": {"math": 0.5, "code": 0.5}, "chatty_share": {"general": 0.6}}
    oracle = make_teacher("oracle", **options)
    old = json.dumps(_old_teacher_samples(rows, 0.6, 0.3, 0, oracle))
    assert json.dumps(sft.teacher_samples(rows, 0.6, 0.3, 0, oracle)) == old
    assert json.dumps(sft.teacher_samples(rows, 0.6, 0.3, 0, world.oracle_response)) == \
        json.dumps(_old_teacher_samples(rows, 0.6, 0.3, 0, world.oracle_response))  # plain functions still work

    # the node: per-domain draws as before, the oracle never cached
    shares, both = {"math": 1.0, "general": 0.5, "code": 0.7}, {"general": 0.3}
    node = generate_teacher_responses(rows, "oracle", shares, both, 0, {"oracle": options}, 1, 64, str(tmp_path))
    by_domain = {}
    for row in rows:
        by_domain.setdefault(row["domain"], []).append(row)
    expected = []
    for d, part in sorted(by_domain.items()):
        expected += _old_teacher_samples(part, shares.get(d, 1.0), both.get(d, 0.0), 0, oracle)
    assert json.dumps(node) == json.dumps(expected)
    assert not any(tmp_path.iterdir())


def test_k_responses_become_samples_with_distinct_ids():
    samples = sft.teacher_samples(ROWS, 0.5, 0.3, 0, CountingTeacher(), k=3)
    ids = [s["id"] for s in samples]
    assert len(set(ids)) == len(ids) == 3 * len(sft.teacher_requests(ROWS, 0.5, 0.3, 0))
    assert ids[0].endswith("-0") and ids[1].endswith("-1") and ids[2].endswith("-2")
    assert {s["messages"][-1]["content"][-2:] for s in samples[:3]} == {"#0", "#1", "#2"}


def test_a_dataset_teachers_fallback_is_cached_and_resumed_and_its_references_never_are(tmp_path):
    """The node's path (cache_path from the teacher's identity, then generate_responses): the rows'
    own responses are answered at once and never written; the fallback's answers are cached as any
    model teacher's, survive its failure, and a rerun asks only for the rest."""
    from nemotron_cascade.generation.dataset_teacher import DatasetTeacher

    refs = {i: f"reference {i}" for i in range(0, len(ROWS), 2)}  # every other row carries its source's answer
    rows = [{**r, "source": "fixture", "reference_responses": {"plain": refs[i]}} if i in refs else
            {**r, "source": "fixture"} for i, r in enumerate(ROWS)]
    modes = [False] * len(rows)
    failing = DatasetTeacher(fallback=CountingTeacher(fail_after=2))
    path = cache_path(tmp_path, "dataset", failing.identity, 2)
    assert failing.cacheable and path.name.startswith("dataset-k2-")
    with pytest.raises(TeacherGenerationError, match=r"2 of 5 finished requests are kept"):  # 5 need the model
        generate_responses(rows, modes, failing, 2, path, batch_size=2)
    assert len(_lines(path)) == 2 and not {line["id"] for line in _lines(path)} & {rows[i]["id"] for i in refs}

    model = CountingTeacher()
    teacher = DatasetTeacher(fallback=model, skip_missing=True)  # its own options: the same cache
    assert cache_path(tmp_path, "dataset", teacher.identity, 2) == path
    got = generate_responses(rows, modes, teacher, 2, path, batch_size=2)
    assert model.requests == 3  # only the rest of the model's requests
    expected = CountingTeacher().respond(rows, modes, 2)
    assert got == [[refs[i]] if i in refs else expected[i] for i in range(len(rows))]
    assert len(_lines(path)) == 5  # the model's answers only
    another = CountingTeacher()
    another.identity = {"model": "another"}
    assert cache_path(tmp_path, "dataset", DatasetTeacher(fallback=another).identity, 2) != path  # another model
