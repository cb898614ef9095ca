"""Curation of the world's tasks: planted leaks and near duplicates go, nothing else does; malformed
rows are quarantined with file, row and reason."""

import json

import pytest

from nemotron_cascade.data import curation, world
from nemotron_cascade.data.decontamination import normalise
from nemotron_cascade.data.dedup import DedupConfig

FIELDS = {"default": ["prompt"], "code": ["prompt", "tests"], "instruction_following": ["prompt", "kwargs"],
          "general": ["prompt", "chosen"], "tool_calling": ["prompt", "tools"], "swe": ["prompt", "gold_patch", "repo"]}


def _world(domain, n=60):
    return [r for s in world.SPLITS for r in world.generate_tasks(domain, s, n if s != "bench" else 20, 0)]


def test_format_noise_keeps_the_words():
    import random

    rng = random.Random(0)
    for text in ["Dev has 10 shells. How many now?", "half is wrong: half(8) should return 4."]:
        noisy = curation.format_noise(text, rng)
        assert normalise(noisy) == normalise(text)


@pytest.mark.parametrize("domain", world.DOMAINS)
def test_planted_leaks_and_duplicates_are_removed_and_nothing_else(domain):
    rows = curation.plant_contamination(_world(domain), leaks=3, near_duplicates=3, seed=1)
    assert sum(r.get("planted") == "benchmark_leak" for r in rows) == 3
    bench = [curation.item_text(r, curation.fields_of(FIELDS, domain)) for r in rows if r["split"] == "bench"]
    train = [r for r in rows if r["split"] != "bench"]
    clean, leaks = curation.decontaminate(train, bench, FIELDS, n=400)
    kept, dups = curation.deduplicate(clean, FIELDS, DedupConfig(threshold=0.9))
    assert {r["planted"] for r in leaks} == {"benchmark_leak"} and len(leaks) == 3
    assert {r["planted"] for r in dups} == {"near_duplicate"} and len(dups) == 3
    assert not any(r.get("planted") for r in kept)
    assert all(d["reason"].startswith("near duplicate of ") for d in dups)


def test_at_n_9_the_world_templates_overlap():
    """Why the base profile compares whole items: at the paper's n = 9 most code prompts of the
    training split share 9 words with some benchmark prompt (template text)."""
    rows = _world("code", 100)
    bench = [r["prompt"] for r in rows if r["split"] == "bench"]
    train = [r for r in rows if r["split"] != "bench"]
    _, removed = curation.decontaminate(train, bench, {"default": ["prompt"]}, n=9)
    assert len(removed) > len(train) / 2


def test_item_text_and_missing_field():
    assert curation.item_text({"prompt": "p", "tests": [{"input": "1"}]}, ["prompt", "tests"]) == 'p\n[{"input": "1"}]'
    with pytest.raises(KeyError, match="item field 'tests' missing"):
        curation.item_text({"id": "x", "prompt": "p"}, ["prompt", "tests"])


def test_malformed_raw_rows_are_quarantined_with_file_row_and_reason(tmp_path):
    from nemotron_cascade.datasets import JsonlDataset

    good = world.generate_tasks("math", "sft", 2, 0)
    path = tmp_path / "math.jsonl"
    path.write_text(json.dumps(good[0]) + "\n{not json\n" + json.dumps({**good[1], "answer": 3}) + "\n"
                    + json.dumps({k: v for k, v in good[1].items() if k != "prompt"}) + "\n")
    with pytest.raises(Exception, match="row 2: invalid JSON"):
        JsonlDataset(str(path), schema="task.math").load()
    rows = JsonlDataset(str(path), schema="task.math", on_error="quarantine").load()
    kept, bad = curation.quarantine(rows, "raw.math")
    assert kept == [good[0]]
    assert [(b["row"], b["reason"]) for b in bad] == [
        (2, "invalid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (3, "field 'answer' must be a string (non-empty), got int"), (4, "missing field 'prompt'")]
    assert all(b["file"] == str(path) and b["source"] == "raw.math" for b in bad)
