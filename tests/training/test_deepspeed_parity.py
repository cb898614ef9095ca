"""Training engines: config loading, the torch engine, and DeepSpeed ZeRO-2/3 parity on 2 CPU ranks.

One ``torchrun --nproc_per_node 2 -m ds_parity --tasks sft grpo rm`` (a
module fixture) trains, per task, one plain torch process and ZeRO-2 and ZeRO-3 runs on 2 ranks from
the same seed, in fp32:

* SFT: 5 steps, global batch 4 packed blocks (2 per rank);
* GRPO: 4 steps of 4 prompts × 4 samples on fixed rollouts (8 sequences per rank, 2 micro-batches
  of 4 each: gradient accumulation across micro-batches and ranks), step 3 poisoned on rank 1's
  second micro-batch (a -inf log-prob): every run must skip it and step 4 must match;
* reward model: 4 steps of 8 pairs (4 per rank), validation at the end.

A second run (``parity_bf16``) takes the gpu profile's precision: the model loaded in bf16 and the
ZeRO-2/3 configs with ``"bf16": {"enabled": true}`` (DeepSpeed's fp32 master copy; no parity with
fp32 torch is expected). One SFT step (the last rank's loss NaN) and one GRPO step (rank 1's second
micro-batch poisoned) must be skipped *with the weights left exactly as they were* — checked on the
weights, not assumed from DeepSpeed's overflow handling (a bf16 ZeRO optimiser without its
``check_grad_overflow`` applies a NaN update; the engine forces that check on) — and the steps
around them must train.

Tolerances. Per-step losses and gradient norms: 1e-5 absolute. Both sides do the same fp32 math;
only the summation order differs (per-rank partial sums of the token losses and gradients, the
gloo all-reduce, the grad norm over flat ZeRO buffers), which moves them by a few ulps (measured:
≤ 2e-6 over several versions of the embedded world). Final weights: 1e-4 absolute, and 1e-4
relative to the torch run's total update (L2). The weights get a looser absolute bound because
AdamW's update ``lr · m / (√v + ε)`` maps a gradient element near ε = 1e-8, a sum of terms that
cancel, from a few ulps of difference to up to ~``lr`` of difference; what that gives depends on
the data (measured 4e-7 to 2.9e-5 on the same SFT run as the embedded world changed; ≤ 9e-6
relative). A wrong data split, loss scaling, accumulation or skip moves losses or grad norms
by > 1e-3 and the weights by ~100% of the update (ZeRO-3 forwarding the bare module, which
overwrites accumulated micro-batch gradients: 116%).
"""

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch

from nemotron_cascade.training import engines

TOL = 1e-5         # per-step losses and gradient norms
WEIGHT_TOL = 1e-4  # final weights: absolute, and relative to the update (see the module docstring)


def test_config_files_load_and_auto_is_filled():
    for name, stage in (("zero1", 1), ("zero2", 2), ("zero3", 3)):
        cfg = engines.load_deepspeed_config(name)
        assert cfg["zero_optimization"]["stage"] == stage and cfg["bf16"]["enabled"]
        assert not any(k.startswith("_") for k in cfg) and "_offload_comment" not in cfg["zero_optimization"]
        filled = engines.fill_auto(cfg, {"gradient_clipping": 0.5, "train_batch_size": 8})
        assert filled["gradient_clipping"] == 0.5 and filled["train_batch_size"] == 8
    assert engines.fill_auto({"gradient_clipping": 2.0}, {"gradient_clipping": 1.0})["gradient_clipping"] == 2.0
    with pytest.raises(ValueError, match="unknown training engine"):
        engines.make_engine("jax", None, None)


def test_torch_engine_is_backward_clip_step():
    def run(use_engine):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        eng = engines.make_engine("torch", model, opt, grad_clip=0.01) if use_engine else None
        norms = []
        for i in range(3):
            loss = model(torch.full((2, 4), float(i + 1))).pow(2).sum()
            if eng:
                eng.zero_grad()
                eng.backward(loss)
                norms.append(float(eng.step()))
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)))
                opt.step()
        return norms, model.state_dict()

    (n1, s1), (n2, s2) = run(True), run(False)
    assert n1 == n2 and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert engines.TorchEngine(None, None, 1.0).is_rank0


def test_loops_refuse_an_engine_or_a_batch_that_does_not_fit(monkeypatch, tiny_model):
    from nemotron_cascade.rl import trainer
    from nemotron_cascade.training import reward_model as rm_lib

    with pytest.raises(ValueError, match="engine"):
        trainer.GRPOConfig(engine="jax")
    with pytest.raises(ValueError, match="rollout_engine"):
        trainer.GRPOConfig(rollout_engine="sglang")
    with pytest.raises(ValueError, match="unknown training engine"):
        rm_lib.RMConfig(engine="jax")
    monkeypatch.setenv("WORLD_SIZE", "3")  # checked before DeepSpeed starts
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        trainer.train_grpo(tiny_model, None, [{}] * 4, None, trainer.GRPOConfig(prompts_per_step=4, engine="deepspeed"),
                           None, None)
    with pytest.raises(ValueError, match="leaves a rank without pairs"):
        rm_lib.train_reward_model(tiny_model, None, [{}] * 18, [], rm_lib.RMConfig(batch_size=8, engine="deepspeed"))


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """The parity runs' results (``ds_parity``'s JSON); the run directory must hold nothing else."""
    pytest.importorskip("deepspeed")
    tmp = tmp_path_factory.mktemp("parity")
    out = tmp / "parity.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free rendezvous port (port 0 would differ between ranks)
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
         "-m", "ds_parity", "--out", str(out), "--tasks", "sft", "grpo", "rm",
         "--steps", "5", "--batch-size", "4", "--grpo-steps", "4", "--grpo-prompts", "4", "--grpo-group", "4",
         "--grpo-micro", "4", "--grpo-poison-step", "2", "--rm-steps", "4"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp.iterdir()) == ["parity.json"]  # rank 1 wrote nothing
    return json.loads(out.read_text())


def _close(a, b):
    """Per-step values within TOL; a skipped step's non-finite values must be skipped on both sides."""
    return len(a) == len(b) and all(
        (math.isfinite(x) and math.isfinite(y) and abs(x - y) < TOL) or not (math.isfinite(x) or math.isfinite(y))
        for x, y in zip(a, b))


def _check_runs(res: dict) -> None:
    ref = res["torch"]
    for stage in ("zero2", "zero3"):
        run = res[stage]
        assert run["world_size"] == 2
        assert _close(run["loss"], ref["loss"]), (stage, run["loss"], ref["loss"])
        assert _close(run["grad_norm"], ref["grad_norm"]), (stage, run["grad_norm"], ref["grad_norm"])
        assert run["max_weight_diff"] < WEIGHT_TOL and run["rel_update_diff"] < WEIGHT_TOL, (stage, run)


@pytest.mark.slow
def test_sft_zero2_and_zero3_on_two_ranks_match_plain_torch(parity):
    ref = parity["sft"]["torch"]["loss"]
    assert len(ref) == 5 and ref[-1] < ref[0] - 0.3  # it trains
    _check_runs(parity["sft"])


@pytest.mark.slow
def test_grpo_zero2_and_zero3_on_two_ranks_match_plain_torch_and_skip_the_same_step(parity):
    res = parity["grpo"]
    assert res["torch"]["poisoned_step"] == 3
    for run in res.values():  # the poisoned step is skipped (no finite loss) and only that one
        assert [math.isfinite(x) for x in run["loss"]] == [True, True, False, True]
        assert run["reward"] == res["torch"]["reward"]  # the same rollouts and rewards on every side
    assert all(g > 0.1 for g in res["torch"]["grad_norm"] if math.isfinite(g))  # a real gradient every step
    _check_runs(res)


@pytest.mark.slow
def test_reward_model_zero2_and_zero3_on_two_ranks_match_plain_torch(parity):
    res = parity["rm"]
    assert res["torch"]["loss"][-1] < res["torch"]["loss"][0] - 1e-3  # it trains (4 small steps)
    _check_runs(res)
    for stage in ("zero2", "zero3"):
        assert res[stage]["val_accuracy"] == res["torch"]["val_accuracy"]
        assert abs(res[stage]["val_margin"] - res["torch"]["val_margin"]) < TOL


@pytest.fixture(scope="module")
def parity_bf16(tmp_path_factory):
    """ZeRO-2 and ZeRO-3 in bf16 on 2 ranks, SFT step 2 and GRPO step 2 poisoned (``ds_parity``'s JSON)."""
    pytest.importorskip("deepspeed")
    tmp = tmp_path_factory.mktemp("parity_bf16")
    out = tmp / "parity.json"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
         "-m", "ds_parity", "--out", str(out), "--tasks", "sft", "grpo", "--precision", "bf16", "--no-torch",
         "--steps", "3", "--sft-poison-step", "1", "--batch-size", "4", "--grpo-steps", "3", "--grpo-prompts", "4",
         "--grpo-group", "4", "--grpo-micro", "4", "--grpo-poison-step", "1"],
        cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sft", "grpo"])
def test_a_nan_step_under_deepspeed_bf16_is_skipped_and_leaves_the_weights(parity_bf16, task):
    for stage in ("zero2", "zero3"):
        run = parity_bf16[task][stage]
        assert [math.isfinite(x) for x in run["loss"]] == [True, False, True], (task, stage, run["loss"])
        assert not math.isfinite(run["grad_norm"][1])  # the skipped step's norm: not a number
        # step 1 and 3 moved the bf16 weights, the poisoned step 2 left them bit for bit
        assert run["changed"] == [True, False, True], (task, stage, run["changed"])
        assert run["finite"] and run["dtype"] == "torch.bfloat16", (task, stage)  # saved in the configured dtype


@pytest.mark.slow
def test_without_its_overflow_check_deepspeed_bf16_applies_the_nan_update_and_the_run_stops(tmp_path):
    """Why the engine forces ``check_grad_overflow`` and checks the weights after a non-finite step:
    with the check off (one rank, ZeRO-2, bf16) the poisoned step's NaN reaches every weight, and
    the run stops there instead of training on."""
    pytest.importorskip("deepspeed")
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parity", "--out", str(tmp_path / "out.json"), "--tasks", "grpo",
         "--precision", "bf16", "--no-torch", "--stages", "2", "--grpo-steps", "3", "--grpo-prompts", "4",
         "--grpo-group", "4", "--grpo-micro", "4", "--grpo-poison-step", "1", "--no-overflow-check"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and not (tmp_path / "out.json").exists()
    assert "NonFiniteError: DeepSpeed applied an update whose gradient norm is" in proc.stderr, proc.stderr[-2000:]
    assert "model.embed_tokens.weight" in proc.stderr
