"""Launching a training loop as a multi-process job from a node (training/launch.py).

The two-rank runs are real ``torchrun`` jobs on this machine's CPUs (gloo), fp32 ZeRO-2, compared
with the same SFT (or GRPO, on fixed rollouts) in one process on the torch engine, with the tolerances of
``test_deepspeed_parity.py`` (its docstring has the derivation): per-step losses within 1e-5,
final weights within 1e-4 absolute and 1e-4 of the update. Each is killed once (SIGKILL of rank 0
after step 3, ``launch.KILL_AFTER_STEP_ENV``; the last checkpoint holds step 2) and the node's
rerun relaunches it, which resumes from DeepSpeed's sharded checkpoint: the comparison is of the
killed-and-resumed run (uninterrupted launched runs match as well: the killed run's first 3 steps,
and ``test_deepspeed_parity.py``). Several nodes cannot run here: their commands are checked as
text only.
"""

from __future__ import annotations

import json
import sys

import ds_parity
import pytest
import torch

from nemotron_cascade.config import config_from_params
from nemotron_cascade.training import launch, resume

TOL, WEIGHT_TOL = 1e-5, 1e-4
SFT_PARAMS = {"block_size": 128, "batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "max_steps": 4, "log_every": 1,
              "seed": 0}
WORK = [launch.WORKER_MODULE, "worker", "/w"]


# ---------------------------------------------------------------------------------------- commands
def test_torchrun_command_on_one_node():
    cfg = launch.launch_config({"world_size": 4, "master_port": 29511})
    assert launch.build_command(cfg, WORK) == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", "29511", "-m", launch.WORKER_MODULE, "worker", "/w"]


def test_torchrun_command_on_two_nodes_uses_c10d_rendezvous():
    # the same command on every node (torchrun's documented multi-node form): 8 ranks = 2 nodes x 4
    cfg = launch.launch_config({"world_size": 8, "nnodes": 2, "master_addr": "node0", "master_port": 29400,
                                     "workdir_root": "/shared/runs"})
    assert launch.build_command(cfg, WORK, job_id="job7") == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4", "--nnodes", "2",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", "node0:29400", "--rdzv_id", "job7",
        "-m", launch.WORKER_MODULE, "worker", "/w"]


def test_deepspeed_command_on_one_node():
    cfg = launch.launch_config({"world_size": 8, "launcher": "deepspeed", "master_port": 29600})
    assert launch.build_command(cfg, WORK) == [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "8", "--master_port", "29600",
        "--no_local_rank", "--module", launch.WORKER_MODULE, "worker", "/w"]


def test_deepspeed_command_with_a_hostfile():
    # 16 ranks on the first 2 hosts of the hostfile, 8 each; extra launcher args go before the module
    cfg = launch.launch_config({"world_size": 16, "nnodes": 2, "launcher": "deepspeed", "hostfile": "/etc/hosts8",
                                     "master_addr": "10.0.0.1", "master_port": 29600, "workdir_root": "/shared",
                                     "launcher_args": ["--launcher", "openmpi"]})
    assert launch.build_command(cfg, WORK) == [
        sys.executable, "-m", "deepspeed.launcher.runner", "--hostfile", "/etc/hosts8", "--num_nodes", "2",
        "--num_gpus", "8", "--master_addr", "10.0.0.1", "--master_port", "29600", "--no_local_rank",
        "--launcher", "openmpi", "--module", launch.WORKER_MODULE, "worker", "/w"]


def test_a_missing_port_becomes_a_free_one():
    cmd = launch.build_command(launch.launch_config({"world_size": 2}), WORK)
    assert 0 < int(cmd[cmd.index("--master_port") + 1]) < 65536


# ---------------------------------------------------------------------------------------- params
def test_no_launch_block_is_one_process():
    assert launch.launch_config(None) == launch.launch_config({}) == launch.LaunchConfig()
    assert not launch.launch_config({"world_size": 1}).distributed


@pytest.mark.parametrize("params, key", [
    ({"wolrd_size": 2}, "wolrd_size"),                                      # a typo: unknown key
    ({"world_size": 0}, "launch.world_size"),
    ({"world_size": "8"}, "launch.world_size"),                              # YAML quoted it
    ({"world_size": True}, "launch.world_size"),
    ({"launcher": "mpirun"}, "launch.launcher"),
    ({"world_size": 6, "nnodes": 4, "workdir_root": "/s", "master_addr": "a"}, "launch.world_size"),  # 6 % 4
    ({"threads_per_rank": 0}, "launch.threads_per_rank"),
    ({"master_port": 70000}, "launch.master_port"),
    ({"timeout_s": -1}, "launch.timeout_s"),
    ({"env": {"MLFLOW_RUN_ID": "x"}}, "launch.env"),                         # ranks never log to MLflow
    ({"hostfile": "/h"}, "launch.hostfile"),                                 # torchrun takes no hostfile
    ({"world_size": 4, "nnodes": 2, "master_addr": "a"}, "launch.workdir_root"),  # not shared by the nodes
    ({"world_size": 4, "nnodes": 2, "workdir_root": "/s"}, "launch.master_addr"),  # torchrun rendezvous
    ({"world_size": 4, "nnodes": 2, "workdir_root": "/s", "launcher": "deepspeed"}, "launch.hostfile"),
])
def test_bad_launch_params_name_the_key(params, key):
    with pytest.raises(ValueError, match=key):
        launch.launch_config(params)


def test_ranks_get_their_threads_and_no_mlflow_variables():
    cfg = launch.launch_config({"world_size": 2, "threads_per_rank": 3, "env": {"NCCL_DEBUG": "WARN"}})
    env = launch.child_env(cfg, {"MLFLOW_RUN_ID": "r", "MLFLOW_TRACKING_URI": "sqlite:///m.db", "PATH": "/bin",
                                 "OMP_NUM_THREADS": "2"})
    assert env["OMP_NUM_THREADS"] == "3" and env["NCCL_DEBUG"] == "WARN" and env["PATH"] == "/bin"
    assert not [k for k in env if k.startswith("MLFLOW")]


def test_a_launched_job_needs_the_deepspeed_engine(tiny_model, tokenizer):
    from nemotron_cascade.training import sft

    with pytest.raises(ValueError, match="engine: deepspeed"):  # refused before anything starts
        launch.train_sft_distributed(tiny_model, tokenizer, [], sft.SFTConfig(),
                                     launch.launch_config({"world_size": 2}))


def test_metrics_lines_are_read_only_when_complete(tmp_path):
    tail = launch._MetricsTail(tmp_path / "m.jsonl")
    assert tail.read() == []
    with open(tmp_path / "m.jsonl", "w") as f:
        f.write('{"step": 1, "metrics": {"loss": 1.0}}\n{"step": 2, "met')  # rank 0 mid-write
        f.flush()
        assert [m["step"] for m in tail.read()] == [1]
        f.write('rics": {"loss": 0.5}}\n')
        f.flush()
        assert tail.read() == [{"step": 2, "metrics": {"loss": 0.5}}]


@pytest.mark.parametrize("params_file", ["parameters_sft.yml", "parameters_rl.yml"])
def test_the_gpu_profile_launch_block_is_valid(params_file):
    # conf/gpu/parameters_{sft,rl}.yml carry a commented `launch:` block: uncommented, it must parse
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "conf/gpu" / params_file).read_text()
    line = next(m.group(1) for m in re.finditer(r"#\s*(launch:.*)", text))
    cfg = launch.launch_config(yaml.safe_load(line)["launch"])
    assert cfg.world_size == 8 and cfg.launcher == "deepspeed"


# ---------------------------------------------------------------------------------------- node, in process
def _policy(fresh, tok):
    from nemotron_cascade.datasets.checkpoint import Checkpoint

    return Checkpoint(model=fresh(), tokenizer=tok, lineage={"stage": "base", "version": "v0"})


@pytest.fixture(scope="module")
def tiny():
    return ds_parity.tiny_tokenizer_and_model()


def test_world_size_one_trains_in_process_as_without_a_launch_block(tiny, world_samples, tmp_path, monkeypatch):
    from nemotron_cascade import stages
    from nemotron_cascade.pipelines.sft import nodes
    from nemotron_cascade.pipelines.sft.config import SFTStageConfig

    tok, fresh = tiny
    runs = []
    for extra in ({}, {"launch": {"world_size": 1}}):
        monkeypatch.setattr(stages, "RESUME_ROOT", str(tmp_path / f"resume{len(runs)}"))  # each run its own
        ckpt, hist = nodes.train_sft_stage(_policy(fresh, tok), world_samples[:40],
                                           SFTStageConfig({**SFT_PARAMS, **extra}), stage="s")
        runs.append((ckpt.model.state_dict(), hist))
    (a, ha), (b, hb) = runs
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_base_model_pretraining_launches_with_world_size_2(world_samples, monkeypatch):
    from nemotron_cascade import stages
    from nemotron_cascade.pipelines.sft import nodes
    from nemotron_cascade.pipelines.sft.config import BaseModelConfig

    calls = []
    def fake(model, tok, blocks, cfg, lc, on_metrics, **kw):
        calls.append((cfg.max_steps, lc.world_size, kw["resume_dir"], kw["keep_final_state"]))

    monkeypatch.setattr(launch, "train_sft_distributed", fake)
    monkeypatch.setattr(stages, "RESUME_ROOT", "/r")
    tiny = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}
    pretrain = {"max_steps": 3, "block_size": 128, "batch_size": 4, "engine": "deepspeed",
                "launch": {"world_size": 2}}
    ckpt = nodes.build_base_model(world_samples[:40], BaseModelConfig(source="tiny", vocab_size=300, tiny=tiny,
                                                                      pretrain=pretrain))
    resume_dir = ckpt.lineage["resume_dir"]  # derived: <root>/base/<key of the run>
    assert calls == [(3, 2, resume_dir, True)] and resume_dir.startswith("/r/base/")


# ---------------------------------------------------------------------------------------- launched jobs
def _work_dirs(runs):
    """The killed launch's work dir (no result) and the relaunch's, kept by KEEP_DIR_ENV."""
    killed, done = (sorted(wd for wd in runs.iterdir() if (wd / "result").exists() == has) for has in (False, True))
    assert len(killed) == 1 and len(done) == 1, list(runs.iterdir())
    return killed[0], done[0]


def _check_resume_dir(path, steps):
    """What the launched job left in the resume dir with ``keep_final_state``: the state after the
    last step (every rank's ZeRO shard and own file, the commit record) and the logged record."""
    tags = sorted(p.name for p in path.iterdir() if resume.TAG_RE.fullmatch(p.name))
    assert tags == [f"step{steps}"] and resume.read_pointer(path)["step"] == steps
    files = {p.name for p in (path / tags[0]).iterdir()}
    assert {"rank0.pt", "rank1.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
            "zero_pp_rank_1_mp_rank_00_optim_states.pt", "mp_rank_00_model_states.pt"} <= files
    assert json.loads((path / launch.LOGGED_FILE).read_text())["step"] == steps


@pytest.mark.slow
def test_two_rank_sft_through_the_node_killed_and_relaunched_matches_one_process(tiny, world_samples, tmp_path,
                                                                                 monkeypatch):
    """The node launches 2 torchrun ranks (ZeRO-2, fp32) over a resume dir that holds another run's
    state (ignored: a warning, a fresh start); rank 0 is killed (SIGKILL) after step 3 with the
    last checkpoint at step 2; the node's rerun relaunches and resumes from step 2. Same losses and
    weights as one torch process; every step streamed to the node's MLflow logging exactly once
    (step 3, logged before the kill, is not logged again); only rank 0 wrote in the work dirs."""
    from pathlib import Path

    from nemotron_cascade import stages, tracking
    from nemotron_cascade.pipelines.sft import nodes
    from nemotron_cascade.pipelines.sft.config import SFTStageConfig
    from nemotron_cascade.training import packing, sft

    tok, fresh = tiny
    init = fresh().state_dict()
    ref_model = fresh()  # the reference: the same SFT in this process, plain torch
    blocks, _ = packing.prepare_blocks(world_samples, tok, 128)
    ref = sft.train_sft(ref_model, blocks, config_from_params(sft.SFTConfig, {k: v for k, v in SFT_PARAMS.items()
                                                                   if k != "block_size"}))
    logged = []
    monkeypatch.setattr(tracking, "log_metrics", lambda m, s=None, prefix="": logged.append((prefix, s, m)))
    monkeypatch.setenv(launch.KEEP_DIR_ENV, "1")  # to inspect what the ranks wrote
    monkeypatch.setenv("MLFLOW_RUN_ID", "parent-run")  # the ranks must not inherit it
    monkeypatch.setattr(stages, "RESUME_ROOT", str(tmp_path / "r"))
    runs = tmp_path / "runs"
    train = {**SFT_PARAMS, "checkpoint_every": 2, "engine": "deepspeed", "deepspeed": ds_parity.fp32_zero(2),
             "launch": {"world_size": 2, "workdir_root": str(runs), "timeout_s": 300,
                        "env": {launch.KILL_AFTER_STEP_ENV: "3"}}}
    # the node's resume dir (derived from the stage and its run) holds another run's committed state
    run = nodes.stage_run(_policy(fresh, tok), world_samples, SFTStageConfig(train), "sft_test")
    resume_dir = Path(run.resume_dir)
    (resume_dir / "step2").mkdir(parents=True)
    (resume_dir / resume.POINTER).write_text(json.dumps({"fingerprint": "another-run", "tag": "step2", "step": 2,
                                                         "world_size": 2, "zero_stage": 2}))
    with pytest.raises(RuntimeError, match="failed with exit code"):
        nodes.train_sft_stage(_policy(fresh, tok), world_samples, SFTStageConfig(train), stage="sft_test")
    assert resume.read_pointer(resume_dir)["step"] == 2  # this run's checkpoint replaced the other run's
    train["launch"] = {k: v for k, v in train["launch"].items() if k != "env"}  # the rerun
    ckpt, hist = nodes.train_sft_stage(_policy(fresh, tok), world_samples, SFTStageConfig(train), stage="sft_test")
    assert ckpt.lineage["resume_dir"] == str(resume_dir)  # the same dir: launch is no part of the run's key

    loss, ref_loss = [h["loss"] for h in hist], [h["loss"] for h in ref]
    assert len(loss) == 4 and all(abs(x - y) < TOL for x, y in zip(loss, ref_loss)), (loss, ref_loss)
    assert ref_loss[-1] < ref_loss[0] - 0.3  # it trains
    diffs = ds_parity.weight_diffs(ckpt.model, ref_model.state_dict(), init)
    assert diffs["max_weight_diff"] < WEIGHT_TOL and diffs["rel_update_diff"] < WEIGHT_TOL, diffs
    streamed = [(s, m["loss"]) for prefix, s, m in logged if prefix == "train/"]
    assert [s for s, _ in streamed] == [1, 2, 3, 4]  # steps 1-3 from the killed job, 4 from the relaunch
    assert all(abs(x - h["loss"]) < TOL for (_, x), h in zip(streamed, hist))
    _check_resume_dir(resume_dir, 4)  # kept for the run journal, which clears it after the node's save

    killed, wd = _work_dirs(runs)
    first, second = (x.joinpath("launch.log").read_text() for x in (killed, wd))
    assert "belongs to another run" in first and "fault injection" in first and "resuming from step" not in first
    assert "resuming from step 2" in second
    # the work dir: the parent's payload and log, and rank 0's metrics and result, nothing else.
    # Rank 1 writing too would double the metrics lines or collide on result.tmp (the job fails).
    assert sorted(p.name for p in wd.iterdir()) == ["data.pt", "launch.log", "metrics.jsonl", "model",
                                                    "payload.json", "result"]
    assert sorted(p.name for p in (wd / "result").iterdir()) == ["model.pt", "result.json"]
    lines = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [4] and {x["rank"] for x in lines} == {0}
    assert [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    result = json.loads((wd / "result" / "result.json").read_text())
    assert result["rank"] == 0 and result["world_size"] == 2
    assert "[rank 1]" in second  # rank 1 ran, its output in the log
    assert json.loads((wd / "payload.json").read_text())["resume"] == {
        "dir": str(resume_dir), "fingerprint": resume.read_pointer(resume_dir)["fingerprint"], "keep_final_state": True}


@pytest.mark.slow
def test_a_failing_job_raises_with_its_exit_code_and_log_tail_and_leaves_nothing(tiny, world_samples, tmp_path):
    from nemotron_cascade.training import packing

    tok, fresh = tiny
    blocks, _ = packing.prepare_blocks(world_samples[:20], tok, 128)
    payload = {"model": fresh(), "tokenizer": tok, "data": blocks, "config": {"no_such_field": 1}}  # ranks raise
    cfg = launch.launch_config({"world_size": 2, "workdir_root": str(tmp_path), "timeout_s": 120})
    with pytest.raises(RuntimeError) as err:
        launch.run_distributed("sft", payload, cfg)
    msg = str(err.value)
    assert "exit code 1" in msg and "torch.distributed.run --nproc_per_node 2" in msg
    assert "worker failed, traceback follows" in msg and "no_such_field" in msg  # the first failing rank's
    assert list(tmp_path.iterdir()) == []  # the work dir is gone, no result left behind


@pytest.mark.slow
def test_a_job_past_its_timeout_is_killed(tiny, world_samples, tmp_path):
    from nemotron_cascade.training import packing

    tok, fresh = tiny
    blocks, _ = packing.prepare_blocks(world_samples[:20], tok, 128)
    payload = {"model": fresh(), "tokenizer": tok, "data": blocks, "config": {}}
    cfg = launch.launch_config({"world_size": 2, "workdir_root": str(tmp_path), "timeout_s": 0.5})
    with pytest.raises(RuntimeError, match="timed out after 0.5 s"):
        launch.run_distributed("sft", payload, cfg)
    assert list(tmp_path.iterdir()) == []


def _rm_pairs():
    from nemotron_cascade.data import preferences, world

    pairs = preferences.build_pairs(world.generate_tasks("general", "sft", 80, 0), ["general"], None, 0.25, 0)
    return [p for p in pairs if p["split"] == "train"][:32], [p for p in pairs if p["split"] == "validation"][:16]


RM_SIZE = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}


@pytest.mark.slow
def test_reward_model_task_through_the_launcher_matches_one_process(tiny, tmp_path):
    """The reward-model task as a launched job (one torchrun rank, to stay cheap: the 2-rank parity
    of the loop itself is test_deepspeed_parity's): 4 steps of 8 pairs, the same losses, validation
    and weights as the loop in this process on the torch engine."""
    from nemotron_cascade.training import reward_model as rm_lib

    tok, _ = tiny
    train_pairs, val_pairs = _rm_pairs()
    cfg = rm_lib.RMConfig(epochs=1, batch_size=8, lr=1e-3, warmup_steps=2, eval_every=4)
    ref = rm_lib.reward_model_from_scratch(tok, RM_SIZE)
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    ref_hist = rm_lib.train_reward_model(ref, tok, train_pairs, val_pairs, cfg)
    model, seen = rm_lib.reward_model_from_scratch(tok, RM_SIZE), []
    hist = launch.train_reward_model_distributed(
        model, tok, train_pairs, val_pairs, rm_lib.RMConfig(**{**cfg.__dict__, "engine": "deepspeed",
                                                               "deepspeed": ds_parity.fp32_zero(2)}),
        launch.launch_config({"world_size": 1, "workdir_root": str(tmp_path), "timeout_s": 300}),
        lambda m, s: seen.append(s))

    assert seen == [1, 2, 3, 4] and all(abs(a["loss"] - b["loss"]) < TOL for a, b in zip(hist, ref_hist))
    assert hist[-1]["val_accuracy"] == ref_hist[-1]["val_accuracy"]
    assert abs(hist[-1]["val_margin"] - ref_hist[-1]["val_margin"]) < TOL
    diffs = ds_parity.weight_diffs(model, ref.state_dict(), init)
    assert diffs["max_weight_diff"] < WEIGHT_TOL and diffs["rel_update_diff"] < WEIGHT_TOL, diffs
    assert list(tmp_path.iterdir()) == []  # the work dir is removed after a good run too


def test_the_reward_model_node_launches_with_world_size_2(tiny, monkeypatch):
    from nemotron_cascade import stages
    from nemotron_cascade.pipelines.reward_model import nodes
    from nemotron_cascade.pipelines.reward_model.config import RMStageConfig

    tok, fresh = tiny
    train_pairs, val_pairs = _rm_pairs()
    calls = []

    def fake(model, tokenizer, train, val, cfg, launch_cfg, on_metrics, **kw):
        calls.append((len(train), len(val), cfg.engine, launch_cfg.world_size, kw["resume_dir"],
                      kw["keep_final_state"], len(kw["fingerprint"])))
        return [{"step": 1, "loss": 0.5, "val_accuracy": 1.0}]

    monkeypatch.setattr(launch, "train_reward_model_distributed", fake)
    monkeypatch.setattr(stages, "RESUME_ROOT", "/r")
    ckpt, hist = nodes.train_reward_model_node(_policy(fresh, tok), train_pairs + val_pairs, RMStageConfig(
        init="scratch", size=RM_SIZE,
        train={"epochs": 1, "batch_size": 8, "engine": "deepspeed", "launch": {"world_size": 2}}))
    resume_dir = ckpt.lineage["resume_dir"]
    assert resume_dir.startswith("/r/reward_model/")
    assert calls == [(32, 16, "deepspeed", 2, resume_dir, True, 16)]  # the resume dir and fingerprint go to the job
    assert ckpt.lineage["validation"] == {"val_accuracy": 1.0}


# ---------------------------------------------------------------------------------------- GRPO
GRPO_PARAMS = {"max_steps": 4, "prompts_per_step": 4, "group_size": 4, "lr": 1e-2, "length_schedule": [[0, 16]],
               "micro_batch_size": 4, "seed": 0}


def _if_rows(n: int = 16) -> list[dict]:
    """The world's IF prompts, each with one word-count instruction (at least / less than 4-6
    words), which the random texts of FixedRollouts (1-16 tokens) pass or fail within a group: in
    the 4 steps below 1 to 4 of the 4 groups carry a signal (measured)."""
    from nemotron_cascade.data import world

    return [{**r, "instruction_id_list": ["length_constraints:number_words"],
             "kwargs": [{"relation": "less than" if i % 2 else "at least", "num_words": 4 + i % 3}]}
            for i, r in enumerate(world.generate_tasks("instruction_following", "rl", n, 0))]


def _rl_config(train, reward="instruction_following", diagnostics=()):
    from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig

    return RLStageConfig(domains=["instruction_following"], reward=reward, train=train, diagnostics=diagnostics)


def _rl_node(policy, train, **kw):
    """The rl_stage node as stage ``if_rl_test``; its resume dir under ``stages.RESUME_ROOT``."""
    from nemotron_cascade.pipelines.rl_stage import nodes

    return nodes.train_rl_stage(policy, _if_rows(), _rl_config(train, **kw), stage="if_rl_test")


def _rl_curves(hist, train, **kw):
    """The figure the stage's ``plot_curves`` node makes of the history (catalogued ``<stage>.curves``)."""
    from nemotron_cascade import stages
    from nemotron_cascade.pipelines.rl_stage import nodes

    return stages.for_stage(nodes.plot_stage_curves, "if_rl_test")(hist, _rl_config(train, **kw))


def test_grpo_world_size_one_trains_in_process_as_without_a_launch_block(tiny, tmp_path, monkeypatch):
    # the in-process path: same losses, weights and resume fingerprint (HF rollouts, seeded)
    from nemotron_cascade import stages
    from nemotron_cascade.rl import trainer

    tok, fresh = tiny
    fingerprints, real = [], trainer.train_grpo
    monkeypatch.setattr(trainer, "train_grpo", lambda *a, **k: fingerprints.append(k["fingerprint"]) or real(*a, **k))
    monkeypatch.setattr(launch, "run_distributed", lambda *a, **k: pytest.fail("launched"))
    runs = []
    for extra in ({}, {"launch": {"world_size": 1}}):
        train = {**GRPO_PARAMS, "max_steps": 2, **extra}
        monkeypatch.setattr(stages, "RESUME_ROOT", str(tmp_path / f"r{len(runs)}"))  # each run its own
        ckpt, hist = _rl_node(_policy(fresh, tok), train)
        runs.append((ckpt.model.state_dict(), hist))
    (a, ha), (b, hb) = runs
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb] and len(ha) == 2
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fingerprints[0] == fingerprints[1]


def test_the_rl_node_launches_with_world_size_2_and_logs_in_the_parent(tiny, monkeypatch, caplog):
    from nemotron_cascade import stages, tracking
    from nemotron_cascade.data import world

    tok, fresh = tiny
    calls, logged = [], []

    def fake(model, tokenizer, rows, reward, cfg, launch_cfg, on_metrics, **kw):
        calls.append((len(rows), reward, cfg.engine, launch_cfg.world_size, kw))
        on_metrics({"loss": 0.5, "reward": 0.25}, 1)  # what run_distributed relays from rank 0
        return [{"step": 1, "loss": 0.5, "reward": 0.25, "accuracy": 0.25}]

    monkeypatch.setattr(launch, "train_grpo_distributed", fake)
    monkeypatch.setattr(tracking, "log_metrics", lambda m, s=None, prefix="": logged.append((prefix, s, m)))
    monkeypatch.setattr(stages, "RESUME_ROOT", "/nonexistent")
    train = {**GRPO_PARAMS, "engine": "deepspeed", "launch": {"world_size": 2}}
    ckpt, hist = _rl_node(_policy(fresh, tok), train, diagnostics=["repetition"])
    ((n, reward, engine, world_size, kw),) = calls
    assert (n, reward, engine, world_size) == (16, "instruction_following", "deepspeed", 2)
    fingerprint = kw.pop("fingerprint")
    resume_dir = ckpt.lineage["resume_dir"]
    assert resume_dir == f"/nonexistent/if_rl_test/{fingerprint[:stages.KEY_CHARS]}"  # the stage and its run's key
    assert kw == {"render_prompt": world.render_prompt, "reward_model": None, "diagnostics": ["repetition"],
                  "resume_dir": resume_dir, "keep_final_state": True}
    assert len(fingerprint) == 16  # resume.fingerprint's, computed as for the in-process path
    assert logged == [("train/", 1, {"loss": 0.5, "reward": 0.25})]
    # the curves figure is the stage's plot_curves node's (catalogued as if_rl_test.curves), made in the parent
    assert _rl_curves(hist, train)._suptitle.get_text() == "if_rl_test: GRPO with reward 'instruction_following'"
    assert hist[0]["loss"] == 0.5 and ckpt.lineage["stage"] == "if_rl_test" and ckpt.lineage["reward"] == reward
    assert "no mid-stage resume" not in caplog.text


@pytest.mark.parametrize("train, kw, error, match", [
    ({"launch": {"world_size": 2}}, {}, ValueError, "engine: deepspeed"),           # the torch engine is one process
    ({"engine": "deepspeed", "prompts_per_step": 3, "launch": {"world_size": 2}}, {}, ValueError,
     r"prompts_per_step \(3\).*launch.world_size \(2\)"),                              # shares must be equal
    ({"engine": "deepspeed", "launch": {"wolrd_size": 2}}, {}, ValueError, "wolrd_size"),  # a typo
    ({"engine": "deepspeed", "launch": {"world_size": 2, "threads_per_rank": 0}}, {}, ValueError,
     "launch.threads_per_rank"),
    ({"engine": "deepspeed", "launch": {"world_size": 2}}, {"reward": "no_such_reward"}, KeyError, "no_such_reward"),
    ({"engine": "deepspeed", "launch": {"world_size": 2}}, {"reward": "reward_model"}, ValueError,
     "reward 'reward_model' scores with a reward model"),                           # the stage has none wired
    ({"engine": "deepspeed", "launch": {"world_size": 2}}, {"diagnostics": ["no_such_diag"]}, KeyError,
     "no_such_diag"),
])
def test_bad_grpo_launch_params_fail_before_anything_starts(tiny, monkeypatch, train, kw, error, match):
    tok, fresh = tiny
    monkeypatch.setattr(launch, "run_distributed", lambda *a, **k: pytest.fail("launched"))
    with pytest.raises(error, match=match):
        _rl_node(_policy(fresh, tok), {**GRPO_PARAMS, **train}, **kw)


def _closure_renderer():
    def render(row, thinking):
        return row["prompt"]
    return render


@pytest.mark.parametrize("render, match", [
    (lambda row, thinking: row["prompt"], "render_prompt must be importable"),  # a lambda has no name
    (_closure_renderer(), "render_prompt must be importable"),                 # nor has a closure
    ("nemotron_cascade.data.world:no_such_renderer", "no_such_renderer"),
    ("nemotron_cascade.data.world.render_prompt", "expected 'module:name'"),
    ("nemotron_cascade.data.world:DOMAINS", "must be a callable"),
])
def test_the_renderer_must_be_importable_by_name(tiny, monkeypatch, render, match):
    from nemotron_cascade.rl import trainer

    tok, fresh = tiny
    monkeypatch.setattr(launch, "run_distributed", lambda *a, **k: pytest.fail("launched"))
    cfg = config_from_params(trainer.GRPOConfig, {**GRPO_PARAMS, "engine": "deepspeed"})
    with pytest.raises(ValueError, match=match):
        launch.train_grpo_distributed(fresh(), tok, _if_rows(), "instruction_following", cfg,
                                      launch.launch_config({"world_size": 2}), render_prompt=render)


def test_a_grpo_work_dir_rebuilds_the_reward_model_reward_by_name(tiny, tmp_path):
    """The payload round trip a rank makes, in this process: rows, renderer, generator factory and
    IF-RL's reward around the reward model (saved to ``reward_model/``, loaded back), which scores
    as the parent's."""
    from nemotron_cascade.data import world
    from nemotron_cascade.datasets.checkpoint import Checkpoint
    from nemotron_cascade.rewards.registry import make_reward
    from nemotron_cascade.rl import trainer
    from nemotron_cascade.training import launch_tasks
    from nemotron_cascade.training import reward_model as rm_lib

    tok, _ = tiny
    rm = Checkpoint(rm_lib.reward_model_from_scratch(tok, {**RM_SIZE, "seed": 3}), tok, {"version": "v1"})
    torch.nn.init.normal_(rm.model.score.weight, std=0.5)  # a fresh head scores 0: give it an opinion
    rows = [{**r, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]} for r in _if_rows(2)]
    cfg = config_from_params(trainer.GRPOConfig, {**GRPO_PARAMS, "group_size": 2})
    launch_tasks.write_grpo({"rows": rows, "reward": "instruction_following_rm", "reward_model": rm,
                             "diagnostics": ["repetition"],
                             "render_prompt": "nemotron_cascade.data.world:render_prompt",
                             "generator": "ds_parity:fixed_rollouts"}, tmp_path)
    job = launch_tasks.read_grpo(tmp_path, cfg)
    texts = ["A plain answer.", "Herons wade, fish and wait.", "Short one", "Herons fish in shallow water."]
    batch_rows = [rows[0], rows[0], rows[1], rows[1]]
    parent = make_reward("instruction_following_rm", reward_model=rm, group_size=2)(texts, batch_rows)
    assert job.reward_fn(texts, batch_rows) == parent and parent[1] == 0.0 and 1.0 < parent[0] < 2.0
    assert job.rows == rows and job.reward == "instruction_following_rm"
    assert job.render_prompt is world.render_prompt and job.make_generator is ds_parity.fixed_rollouts
    assert set(job.diagnostics(texts, batch_rows, parent)) == {"repeated_sentences", "repeated_trigrams"}


TIMINGS = {"completion_tokens_per_s", "steps_per_s", "rollout_share"}


@pytest.mark.slow
def test_two_rank_grpo_through_the_node_killed_and_relaunched_matches_one_process(tiny, tmp_path, monkeypatch):
    """The rl_stage node launches 2 torchrun ranks (ZeRO-2, fp32) that rebuild the reward
    (``instruction_following``) and renderer by name and roll out on FixedRollouts (a generator
    factory by dotted path, tests only); rank 0 is killed (SIGKILL) after step 3 with the last
    checkpoint at step 2 (the prompt pool, the generator's call count and the ZeRO shards in it),
    and the node's rerun relaunches and resumes from step 2: per-step losses and the final weights
    as the same GRPO in one torch process; every step streamed to the parent's logging once; only
    rank 0 wrote results."""
    import functools

    from nemotron_cascade import stages, tracking
    from nemotron_cascade.data import world
    from nemotron_cascade.rewards.registry import get_reward
    from nemotron_cascade.rl import trainer

    tok, fresh = tiny
    init, ref_model = fresh().state_dict(), fresh()
    ref = trainer.train_grpo(ref_model, tok, _if_rows(), get_reward("instruction_following"),
                             config_from_params(trainer.GRPOConfig, GRPO_PARAMS), ds_parity.FixedRollouts(tok),
                             world.render_prompt)
    logged = []
    monkeypatch.setattr(launch, "train_grpo_distributed",
                        functools.partial(launch.train_grpo_distributed, generator=ds_parity.fixed_rollouts))
    monkeypatch.setattr(tracking, "log_metrics", lambda m, s=None, prefix="": logged.append((prefix, s, m)))
    monkeypatch.setenv(launch.KEEP_DIR_ENV, "1")  # to inspect what the ranks wrote
    monkeypatch.setenv("MLFLOW_RUN_ID", "parent-run")  # the ranks must not inherit it
    monkeypatch.setattr(stages, "RESUME_ROOT", str(tmp_path / "r"))
    runs = tmp_path / "runs"
    train = {**GRPO_PARAMS, "checkpoint_every": 2, "engine": "deepspeed", "deepspeed": ds_parity.fp32_zero(2),
             "launch": {"world_size": 2, "workdir_root": str(runs), "timeout_s": 300,
                        "env": {launch.KILL_AFTER_STEP_ENV: "3"}}}
    with pytest.raises(RuntimeError, match="failed with exit code"):
        _rl_node(_policy(fresh, tok), train, diagnostics=["repetition"])
    (resume_dir,) = (tmp_path / "r" / "if_rl_test").iterdir()  # the stage's dir of this run's key
    assert resume.read_pointer(resume_dir)["step"] == 2  # (the curves node runs only after a good training)
    train["launch"] = {k: v for k, v in train["launch"].items() if k != "env"}  # the rerun
    ckpt, hist = _rl_node(_policy(fresh, tok), train, diagnostics=["repetition"])
    assert ckpt.lineage["resume_dir"] == str(resume_dir)  # resumed from the same dir: launch is no part of the key

    loss, ref_loss = [h["loss"] for h in hist], [h["loss"] for h in ref]
    assert len(loss) == 4 and all(abs(x - y) < TOL for x, y in zip(loss, ref_loss)), (loss, ref_loss)
    assert all(abs(h["reward"] - r["reward"]) < TOL for h, r in zip(hist, ref))  # rewards gathered from both ranks
    assert [h["epoch"] for h in hist] == [h["epoch"] for h in ref]  # the pool resumed where it was
    assert min(h["zero_variance_groups"] for h in ref) < 1.0  # some groups carry a gradient
    diffs = ds_parity.weight_diffs(ckpt.model, ref_model.state_dict(), init)
    assert diffs["max_weight_diff"] < WEIGHT_TOL and diffs["rel_update_diff"] < WEIGHT_TOL, diffs
    # every step's metrics (train_grpo's on_metrics dict, diagnostics of rank 0's share included)
    # reached the parent's logging once: 1-3 from the killed job, 4 from the relaunch (which
    # recomputed step 3, the same but for its timings); the figure and lineage were made in the parent
    streamed = [(s, m) for prefix, s, m in logged if prefix == "train/"]
    assert [s for s, _ in streamed] == [1, 2, 3, 4] and "repeated_sentences" in streamed[0][1]
    for (_, m), h in zip(streamed, hist):
        assert m.keys() == h.keys() - {"step"}
        assert all(m[k] == h[k] or abs(m[k] - h[k]) < TOL for k in m.keys() - TIMINGS), (m, h)
    assert _rl_curves(hist, train).axes and ckpt.lineage["data"]["prompts"] == 16
    _check_resume_dir(resume_dir, 4)

    killed, wd = _work_dirs(runs)  # the parent's payload and log, rank 0's metrics and result, nothing else
    assert "resuming from step 2" in (wd / "launch.log").read_text()
    assert sorted(p.name for p in wd.iterdir()) == ["data.json", "launch.log", "metrics.jsonl", "model",
                                                    "payload.json", "result"]
    assert sorted(p.name for p in (wd / "result").iterdir()) == ["model.pt", "result.json"]
    lines = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [4] and {x["rank"] for x in lines} == {0}
    result = json.loads((wd / "result" / "result.json").read_text())
    assert result["rank"] == 0 and result["world_size"] == 2
    assert "[rank 1]" in (wd / "launch.log").read_text()
