"""The lineage command: from any checkpoint back to the data, across runs and a moved project."""

import json
import shutil

import pytest

from nemotron_cascade import lineage


def _checkpoint(root, dataset, version, name, record):
    path = root / "data/06_models" / dataset / version / name
    path.mkdir(parents=True)
    (path / "lineage.json").write_text(json.dumps({**record, "version": version, "path": str(path)}))
    return path


@pytest.fixture
def project(tmp_path):
    data = tmp_path / "data/05_model_input/blend.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text('{"id": 1}\n')
    digest = lineage.file_digest(data)
    files = [{"path": "data/05_model_input/blend.jsonl", "sha256": digest}]
    sft = _checkpoint(tmp_path, "sft.stage2", "v1", "sft.stage2", {
        "stage": "sft", "mlflow_run_id": "run-sft",
        "inputs": {"sft_blend": {"rows": 1, "sha256": digest, "files": files}}})
    rm = _checkpoint(tmp_path, "reward_model", "v2", "reward_model", {
        "stage": "reward_model", "parent": {"stage": "sft", "version": "v1", "path": str(sft)}})
    # a later kedro run: rlhf from the sft checkpoint of the earlier one
    rlhf = _checkpoint(tmp_path, "rlhf", "v3", "rlhf", {
        "stage": "rlhf", "reward": "reward_model", "mlflow_run_id": "run-rlhf",
        "parent": {"stage": "sft", "version": "v1", "path": str(sft)},
        "reward_model": {"stage": "reward_model", "version": "v2", "path": str(rm)}})
    _checkpoint(tmp_path, "if_rl", "v4", "if_rl", {
        "stage": "if_rl", "parent": {"stage": "rlhf", "version": "v3", "path": str(rlhf)}})
    return tmp_path


@pytest.mark.parametrize("ref, reason", [
    ("if_rl", "a stage name means its latest checkpoint"),
    ("v4", "a version is looked up under data/06_models"),
    ("data/06_models/if_rl/v4", "a version directory holds one checkpoint"),
    ("data/06_models/if_rl/v4/if_rl", "the checkpoint directory itself"),
])
def test_the_chain_reaches_the_curated_data(project, ref, reason, monkeypatch):
    monkeypatch.chdir(project)
    records = lineage.chain(ref)
    assert [r["stage"] for r in records] == ["if_rl", "rlhf", "sft"], reason
    assert records[1]["reward_model"]["version"] == "v2"
    (blend,) = records[2]["inputs"]["sft_blend"]["files"]
    assert blend["status"] == "unchanged"


def test_a_changed_data_file_is_flagged(project):
    (project / "data/05_model_input/blend.jsonl").write_text('{"id": 2}\n')
    (blend,) = lineage.chain("if_rl", project)[-1]["inputs"]["sft_blend"]["files"]
    assert blend["status"] == "changed"


def test_a_moved_project_still_resolves_its_parents(project, tmp_path_factory):
    moved = tmp_path_factory.mktemp("elsewhere") / "project"
    shutil.copytree(project, moved)
    shutil.rmtree(project)  # the recorded absolute paths are gone
    assert [r["stage"] for r in lineage.chain("if_rl", moved)] == ["if_rl", "rlhf", "sft"]


def test_the_command_prints_the_chain_and_names_a_missing_checkpoint(project, capsys):
    assert lineage.main(["if_rl", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert out.index("if_rl v4") < out.index("rlhf v3") < out.index("sft v1")
    assert "data/05_model_input/blend.jsonl" in out and "reward model v2" in out
    assert lineage.main(["nope", "--project", str(project)]) == 2
    assert "no checkpoint 'nope'" in capsys.readouterr().err
    assert lineage.main(["if_rl", "--project", str(project), "--json"]) == 0
    assert [r["stage"] for r in json.loads(capsys.readouterr().out)] == ["if_rl", "rlhf", "sft"]


def test_every_checkpoint_path_is_shown_the_same_way(project, capsys, monkeypatch):
    """Relative to the project, like the data files: the first checkpoint was found relative and its
    parents through the absolute paths their lineage recorded, and neither shows through."""
    monkeypatch.chdir(project)
    records = lineage.chain("if_rl")
    assert [r["path"] for r in records] == ["data/06_models/if_rl/v4/if_rl", "data/06_models/rlhf/v3/rlhf",
                                            "data/06_models/sft.stage2/v1/sft.stage2"]
    assert records[1]["reward_model"]["path"] == "data/06_models/reward_model/v2/reward_model"
    assert lineage.main(["if_rl", "--project", str(project)]) == 0
    shown = [line.strip() for line in capsys.readouterr().out.splitlines() if "data/06_models" in line
             and not line.strip().startswith(("data ", "<-"))]
    assert shown == [r["path"] for r in records]  # --project given absolute: still relative to it
