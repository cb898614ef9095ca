"""The GPU check in its CPU mode (the GPU mode runs on a lent GPU only): the project's loops at a small
size on the audit's virtual device, the FLOPs formula worked by hand, and the failures it must report."""

import pytest

from nemotron_cascade import gpu_check


def test_cpu_mode_runs_every_phase_and_prints_the_table(capsys):
    assert gpu_check.main(["--device", "cpu", "--sft-steps", "2", "--grpo-steps", "1", "--no-vllm"]) == 0
    out = capsys.readouterr().out
    for phase in ("sft", "grpo_hf", "evaluation"):
        assert f"\n{phase} " in out, out
    assert "tokens/s" in out and "peak GPU MiB" in out and "MFU" in out
    assert "fp32 master weights, bf16 autocast" in out  # the gpu profile's precision path
    assert "every parameter, buffer and batch tensor on the device" in out


def test_run_measures_each_phase_and_trains():
    check = gpu_check.run("cpu", gpu_check.SMALL, vllm=False)
    assert check.findings == [] and not gpu_check.failed(check)
    for name in ("sft", "grpo_hf", "evaluation"):
        ph = check.phases[name]
        assert ph["tokens_per_s"] > 0 and ph["peak_mib"] is None and ph["mfu"] is None, name  # no GPU, no peak
    assert check.phases["grpo_hf"]["rollout_tokens_per_s"] > 0
    assert check.phases["grpo_hf"]["loss"] != 0.0  # the stand-in reward has variance: a real gradient
    assert check.phases["model"]["dtype"] == "bfloat16"


def test_a_batch_left_on_the_host_fails_the_check_naming_it(monkeypatch, capsys):
    """token_loss written wrongly (labels never follow the model): exit 1, the tensor, op and line named."""
    import torch.nn.functional as F

    from nemotron_cascade.training import sft

    def labels_left_behind(model, input_ids, labels, position_ids, reduction="mean", **chunking):
        dev = next(model.parameters()).device
        logits = model(input_ids=input_ids.to(dev), position_ids=position_ids.to(dev), use_cache=False).logits
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                               ignore_index=-100, reduction=reduction)

    monkeypatch.setattr(sft, "token_loss", labels_left_behind)
    assert gpu_check.main(["--device", "cpu", "--sft-steps", "1", "--grpo-steps", "1", "--no-vllm"]) == 1
    out = capsys.readouterr().out
    assert "LEFT OFF THE DEVICE" in out and "sft: a host tensor (510,) int64" in out
    assert "in cross_entropy (at sft.py:" in out  # the project line whose call used it


def test_a_parameter_off_the_device_is_named():
    import torch

    model = torch.nn.Linear(2, 2)
    assert gpu_check.placement_findings(model, "cpu", "sft") == []
    assert gpu_check.placement_findings(model, "meta", "after sft") == [
        "after sft: weight is on cpu, not meta", "after sft: bias is on cpu, not meta"]


def test_flops_per_token_of_qwen3_0_6b_worked_by_hand():
    """N = embeddings 151,936 x 1024 = 155,582,464 (tied: the LM head once) + 28 layers x 15,730,944
    (q 1024x2048, k and v 1024x1024, o 2048x1024, MLP 3 x 1024x3072, two RMSNorms of 1024, q/k norms
    of 128) + the final norm 1024 = 596,049,920. At T = 16,384: 6N = 3,576,299,520 and the causal
    attention term 6 x 28 x 16 x 128 x 16,384 = 5,637,144,576 (it dominates at 16K)."""
    from transformers import Qwen3Config

    cfg = Qwen3Config(**gpu_check.QWEN3_0_6B)
    assert gpu_check.flops_per_token(cfg, 16_384) == 3_576_299_520 + 5_637_144_576
    assert gpu_check.flops_per_token(cfg, 0) == 6 * 596_049_920


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", 989e12),   # SXM
    ("NVIDIA H100 PCIe", 756e12),        # PCIe: matched before the plain H100
    ("NVIDIA H200", 989e12),
    ("Some Future GPU", None),           # unknown: MFU n/a unless --peak-tflops
])
def test_peak_flops_by_gpu_name(monkeypatch, name, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert gpu_check.peak_flops("cuda:0") == expected
    assert gpu_check.peak_flops("cuda:0", 100.0) == 100e12 and gpu_check.peak_flops("cpu") is None


def test_cuda_without_a_gpu_exits_2(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
