"""The training service (``nemotron_cascade.stages``): resume directories derived from the stage and
its run, local vs launched training chosen once, one lineage record, stage-bound node functions."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

from nemotron_cascade import stages
from nemotron_cascade.config import config_from_params
from nemotron_cascade.training.launch import LaunchConfig


def test_the_resume_dir_is_the_stage_and_the_key_of_its_run():
    a = stages.start("math_rl", LaunchConfig(), "v1", ["p1"], {"lr": 1e-5}, "math", None)
    again = stages.start("math_rl", LaunchConfig(), "v1", ["p1"], {"lr": 1e-5}, "math", None)
    other = stages.start("math_rl", LaunchConfig(), "v1", ["p1"], {"lr": 2e-5}, "math", None)
    assert a.resume_dir == f"data/06_models/_resume/math_rl/{a.fingerprint[:stages.KEY_CHARS]}"
    assert again.resume_dir == a.resume_dir  # a rerun of the same run resumes from it
    assert other.resume_dir != a.resume_dir  # other parameters never share it (the old defect)
    assert Path(other.resume_dir).parent == Path(a.resume_dir).parent
    assert a.resume == {"resume_dir": a.resume_dir, "fingerprint": a.fingerprint, "keep_final_state": True}


@pytest.mark.parametrize("stage, label", [("sft.stage1", "sft_stage1"), ("sft.stage2", "sft"), ("base", "base"),
                                          ("math_rl", "math_rl"), ("reward_model", "reward_model")])
def test_a_stage_label_is_its_namespace_but_for_the_sft_stages(stage, label):
    assert stages.label_of(stage) == label


def test_the_lineage_names_stage_parent_run_and_resume_dir(monkeypatch):
    from nemotron_cascade import tracking
    from nemotron_cascade.datasets.checkpoint import Checkpoint

    monkeypatch.setattr(tracking, "current_run_id", lambda: "run-1")
    parent = Checkpoint(None, None, {"stage": "sft", "version": "v7", "path": "p", "data": {"x": 1}})
    run = stages.start("rlhf", LaunchConfig(), "v7")
    record = stages.lineage("rlhf", parent, run, reward="reward_model", data={"prompts": 3})
    assert record == {"stage": "rlhf", "parent": {"stage": "sft", "version": "v7", "path": "p"},
                      "reward": "reward_model", "data": {"prompts": 3}, "mlflow_run_id": "run-1",
                      "resume_dir": run.resume_dir}
    assert stages.lineage("base", source="tiny") == {"stage": "base", "source": "tiny", "mlflow_run_id": "run-1"}


@pytest.mark.parametrize("world_size, launched", [(1, False), (2, True)])
def test_training_is_local_or_launched_by_the_launch_block(monkeypatch, world_size, launched):
    from nemotron_cascade import tracking
    from nemotron_cascade.training import launch, reward_model, sft

    calls, logged = [], []
    monkeypatch.setattr(tracking, "log_metrics", lambda m, s=None, prefix="": logged.append((prefix, s)))
    monkeypatch.setattr(sft, "train_sft", lambda model, blocks, cfg, on_metrics=None, **kw: (
        on_metrics({}, 1), calls.append(("sft", kw)))[-1])
    monkeypatch.setattr(launch, "train_sft_distributed", lambda model, tok, blocks, cfg, lc, on_metrics, **kw: (
        on_metrics({}, 1), calls.append(("sft-launched", lc.world_size, kw)))[-1])
    monkeypatch.setattr(reward_model, "train_reward_model", lambda *a, on_metrics=None, **kw: calls.append(("rm", kw)))
    monkeypatch.setattr(launch, "train_reward_model_distributed", lambda *a, **kw: calls.append(("rm-launched", kw)))
    run = stages.start("s", LaunchConfig(world_size=world_size), "v")
    stages.train_sft(run, "model", "tok", ["block"], "cfg", prefix="pretrain/")
    stages.train_reward_model(run, "model", "tok", [], [], "cfg")
    if launched:
        assert calls == [("sft-launched", 2, run.resume), ("rm-launched", run.resume)]
    else:
        assert calls == [("sft", run.resume), ("rm", run.resume)]
    assert logged == [("pretrain/", 1)]  # the prefix reaches the stage's MLflow run


def test_grpo_builds_its_reward_in_process_and_names_it_to_a_launched_job(monkeypatch):
    from nemotron_cascade.data import world
    from nemotron_cascade.rl import trainer
    from nemotron_cascade.training import launch

    local, launched = [], []
    monkeypatch.setattr(trainer, "train_grpo", lambda *a, **kw: local.append((a, kw)))
    monkeypatch.setattr(launch, "train_grpo_distributed", lambda *a, **kw: launched.append((a, kw)))
    cfg = config_from_params(trainer.GRPOConfig, {"group_size": 2})
    stages.train_grpo(stages.start("if_rl", LaunchConfig(), "v"), "m", "t", [], "instruction_following", cfg,
                      ["repetition"])
    (args, kw), = local
    assert callable(args[3]) and args[5] is None and args[6] is world.render_prompt  # reward fn, generator, renderer
    assert kw["reward_name"] == "instruction_following" and callable(kw["diagnostics"])
    run = stages.start("if_rl", LaunchConfig(world_size=2), "v")
    stages.train_grpo(run, "m", "t", [], "instruction_following", cfg, ["repetition"])
    (args, kw), = launched
    assert args[3] == "instruction_following" and args[5].world_size == 2  # by name, for the ranks
    assert kw["diagnostics"] == ["repetition"] and kw["render_prompt"] is world.render_prompt
    assert kw["reward_model"] is None and {k: kw[k] for k in run.resume} == run.resume


def test_a_stage_bound_node_function_keeps_its_signature_and_type_hints():
    from nemotron_cascade.pipelines.rl_stage import nodes
    from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig

    bound = stages.for_stage(nodes.plot_stage_curves, "math_rl")
    assert list(inspect.signature(bound).parameters) == ["train_history", "config"]
    assert typing.get_type_hints(bound)["config"] is RLStageConfig  # what Kedro validates
    assert bound.__name__ == "plot_stage_curves"
    cfg = RLStageConfig(domains=["math"], reward="math", train={"length_schedule": [[0, 8]]})
    fig = bound([{"step": 1, "reward": 0.5}, {"step": 2, "reward": 0.7}], cfg)
    assert fig._suptitle.get_text() == "math_rl: GRPO with reward 'math'"


def test_the_sft_node_trains_in_its_derived_resume_dir_and_records_it(tmp_path, monkeypatch, world_samples,
                                                                      tokenizer, tiny_model):
    """The node's trainer keeps its last state in ``data/06_models/_resume/<stage>/<key>`` (relative
    to the project) and the checkpoint's lineage names that directory for the run journal to clear."""
    from nemotron_cascade.datasets.checkpoint import Checkpoint
    from nemotron_cascade.pipelines.sft import nodes
    from nemotron_cascade.pipelines.sft.config import SFTStageConfig

    monkeypatch.chdir(tmp_path)
    cfg = SFTStageConfig({"block_size": 128, "max_steps": 2, "batch_size": 2, "warmup_steps": 1, "log_every": 1,
                          "checkpoint_every": 1})
    policy = Checkpoint(tiny_model, tokenizer, {"stage": "base", "version": "v0", "path": "p"})
    ckpt, history = nodes.train_sft_stage(policy, world_samples[:20], cfg, stage="sft.stage1")
    run = nodes.stage_run(policy, world_samples[:20], cfg, "sft.stage1")
    assert ckpt.lineage["resume_dir"] == run.resume_dir and run.resume_dir.startswith("data/06_models/_resume/sft.")
    assert (tmp_path / run.resume_dir / "state.pt").exists() and [h["step"] for h in history] == [1, 2]
    assert ckpt.lineage["stage"] == "sft_stage1" and ckpt.lineage["parent"]["version"] == "v0"
    other = SFTStageConfig({**cfg.train_params, "lr": 1e-4})
    assert nodes.stage_run(policy, world_samples[:20], other, "sft.stage1").resume_dir != run.resume_dir
