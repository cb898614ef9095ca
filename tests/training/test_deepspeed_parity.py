"""Training engines: config loading, the torch engine, and DeepSpeed ZeRO-2/3 parity on 2 CPU ranks.

The parity test launches ``torchrun --nproc_per_node 2 -m nemotron_cascade.training.ds_parity``:
5 SFT steps of the tiny model in fp32, global batch 4 (2 blocks per rank), against one plain
torch process on the same data and seed. Tolerance: 1e-5 absolute on every per-step loss and on
every final weight. Both runs do the same fp32 math; only the summation order differs (per-rank
partial sums of the token losses and gradients, the gloo all-reduce, the grad norm over flat
ZeRO buffers), which moves results by a few ulps (measured: losses ≤ 1e-6 apart, weights
≤ 4e-7). A wrong data split, loss scaling, LR schedule or clipping moves them by > 1e-3.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from nemotron_cascade.training import engines

TOL = 1e-5


def test_config_files_load_and_auto_is_filled():
    for name, stage in (("zero2", 2), ("zero3", 3)):
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


@pytest.mark.slow
def test_zero2_and_zero3_on_two_ranks_match_plain_torch(tmp_path):
    pytest.importorskip("deepspeed")
    out = tmp_path / "parity.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free rendezvous port (port 0 would differ between ranks)
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
         "-m", "nemotron_cascade.training.ds_parity", "--out", str(out), "--steps", "5", "--batch-size", "4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parity.json"]  # rank 1 wrote nothing
    res = json.loads(out.read_text())
    ref = res["torch"]["loss"]
    assert len(ref) == 5 and ref[-1] < ref[0] - 0.3  # it trains
    for stage in ("zero2", "zero3"):
        run = res[stage]
        assert run["world_size"] == 2
        assert max(abs(a - b) for a, b in zip(run["loss"], ref)) < TOL, (stage, run["loss"], ref)
        assert max(abs(a - b) for a, b in zip(run["grad_norm"], res["torch"]["grad_norm"])) < TOL
        assert run["max_weight_diff"] < TOL, (stage, run["max_weight_diff"])
