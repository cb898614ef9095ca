"""Custom Kedro datasets: versioned checkpoints and validated, atomic JSON lines."""

import json

import pytest
from kedro.io.core import Version

from nemotron_cascade.datasets import Checkpoint, CheckpointDataset, DataValidationError, JsonlDataset


def test_checkpoint_roundtrip_with_lineage(tmp_path, tokenizer, tiny_model):
    ds = CheckpointDataset(str(tmp_path / "policy"), version=Version(None, None))
    ds.save(Checkpoint(tiny_model, tokenizer, {"stage": "sft", "parent": {"version": "v0"}}))
    loaded = CheckpointDataset(str(tmp_path / "policy"), version=Version(None, None)).load()
    assert loaded.lineage["stage"] == "sft" and loaded.lineage["parent"] == {"version": "v0"}
    assert loaded.lineage["version"] == ds.resolve_save_version()
    assert loaded.tokenizer.chat_template == tokenizer.chat_template


def test_a_version_can_be_pinned(tmp_path, tokenizer, tiny_model):
    for v in ("2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"):
        CheckpointDataset(str(tmp_path / "p"), version=Version(None, v)).save(
            Checkpoint(tiny_model, tokenizer, {"stage": v}))
    latest = CheckpointDataset(str(tmp_path / "p"), version=Version(None, None)).load()
    pinned = CheckpointDataset(str(tmp_path / "p"), version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert latest.lineage["stage"].startswith("2026-01-02") and pinned.lineage["stage"].startswith("2026-01-01")


def test_crash_mid_save_leaves_no_version_and_the_previous_one_loads(tmp_path, tokenizer, tiny_model, monkeypatch):
    good = Version(None, "2026-01-01T00.00.00.000Z")
    CheckpointDataset(str(tmp_path / "p"), version=good).save(Checkpoint(tiny_model, tokenizer, {"stage": "good"}))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tokenizer, "save_pretrained", boom)
    with pytest.raises(Exception, match="disk full"):
        CheckpointDataset(str(tmp_path / "p"), version=Version(None, "2026-01-02T00.00.00.000Z")).save(
            Checkpoint(tiny_model, tokenizer, {"stage": "bad"}))
    monkeypatch.undo()
    assert not list((tmp_path / "p").glob("2026-01-02*/.*tmp*"))
    assert CheckpointDataset(str(tmp_path / "p"), version=Version(None, None)).load().lineage["stage"] == "good"


def _write(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return JsonlDataset(str(path), schema="task.math")


GOOD = json.dumps({"id": "a", "domain": "math", "split": "sft", "prompt": "1+1?", "answer": "2"}).encode()

BAD_ROWS = [
    ("invalid json", b"{not json", "row 2: invalid JSON"),
    ("not an object", b"[1, 2]", "row 2: expected a JSON object"),
    ("missing field", json.dumps({"id": "b", "domain": "math", "split": "sft", "prompt": "q"}).encode(),
     "row 2: missing field 'answer'"),
    ("wrong type", json.dumps({"id": "b", "domain": "math", "split": "sft", "prompt": "q", "answer": 2}).encode(),
     "row 2: field 'answer' must be a string"),
    ("empty prompt", json.dumps({"id": "b", "domain": "math", "split": "sft", "prompt": " ", "answer": "2"}).encode(),
     "row 2: field 'prompt' must be a string (non-empty)"),
    ("non utf-8 bytes", b"\xff\xfe", "row 2: not valid UTF-8"),
]


@pytest.mark.parametrize("name,line,message", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_rows_name_the_file_row_and_field(tmp_path, name, line, message):
    ds = _write(tmp_path / "math.jsonl", [GOOD, line])
    with pytest.raises(DataValidationError) as err:
        ds.load()
    assert str(tmp_path / "math.jsonl") in str(err.value) and message in str(err.value)


def test_list_fields_check_their_elements(tmp_path):
    row = {"id": "c", "domain": "code", "split": "sft", "prompt": "p", "tests": [{"input": "", "output": ""}, "x"]}
    (tmp_path / "c.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataValidationError, match=r"field 'tests'\[1\] must be an object"):
        JsonlDataset(str(tmp_path / "c.jsonl"), schema="task.code").load()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataValidationError, match="file not found"):
        JsonlDataset(str(tmp_path / "none.jsonl")).load()


def test_failed_save_keeps_the_old_file_whole(tmp_path):
    path = tmp_path / "m.jsonl"
    ds = JsonlDataset(str(path), schema="task.math")
    ds.save([json.loads(GOOD)])
    before = path.read_bytes()
    with pytest.raises(DataValidationError, match="missing field 'answer'"):
        ds.save([json.loads(GOOD), {"id": "x", "domain": "math", "split": "sft", "prompt": "q"}])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]
