"""The GPU check's entry point, in its CPU mode (the GPU mode runs on a GPU machine only)."""

from nemotron_cascade import gpu_check


def test_cpu_mode_trains_in_lock_step_and_prints_the_table(capsys):
    assert gpu_check.main(["--device", "cpu", "--sft-steps", "3", "--grpo-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "sft" in out and "grpo" in out and "ok" in out and "MISMATCH" not in out


def test_run_reports_losses_and_throughput():
    r = gpu_check.run("cpu", sft_steps=2, grpo_steps=1)
    assert r["sft_max_loss_diff"] == 0.0 and r["grpo_max_loss_diff"] == 0.0
    assert r["sft_tokens_per_s"] > 0 and r["grpo_tokens_per_s"] > 0 and r["peak_gpu_mem_mib"] is None
    assert r["grpo_final_loss"] != 0.0  # the stand-in reward has variance: a real gradient


def test_cuda_without_a_gpu_exits_2(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
