"""Mid-stage resume on the DeepSpeed paths (training/resume.py: save_sharded, load_sharded), the
commit protocol on a one-rank stand-in engine (``tests/ds_fakes.py``, no DeepSpeed: its
``save_checkpoint`` writes one file per tag), and the launched job's record of logged steps.

The real 2-rank ZeRO-2 runs (a launched SFT and GRPO job killed with SIGKILL, relaunched, matching
one torch process) are in ``test_launch.py``.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from ds_fakes import Crash, OneRankDeepSpeed

from nemotron_cascade.training import launch, resume
from nemotron_cascade.training.faults import NonFiniteError


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    return model, opt, sched, OneRankDeepSpeed(model, opt, 1.0)


def _train(model, opt, sched, steps):
    for _ in range(steps):
        opt.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        sched.step()


def test_a_save_is_committed_by_the_record_and_restores_model_scheduler_rng_and_loop_state(tmp_path):
    model, opt, sched, eng = _setup()
    _train(model, opt, sched, 2)
    resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 2, [{"step": 2, "loss": 1.5}], {"pool": [1, 2]}, "mine")
    expected_draw, weights = torch.rand(3), {k: v.clone() for k, v in model.state_dict().items()}
    assert json.loads((tmp_path / resume.POINTER).read_text()) == {
        "fingerprint": "fp", "tag": "step2", "step": 2, "world_size": 1, "zero_stage": 2}

    model, opt, sched, eng = _setup(seed=1)  # a fresh process: other weights, another RNG stream
    state = resume.load_sharded(str(tmp_path), "fp", eng, opt, sched)
    assert state == {"step": 2, "history": [{"step": 2, "loss": 1.5}], "extra": {"pool": [1, 2]},
                     "rank_extra": "mine"}
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert sched.last_epoch == 2 and opt.param_groups[0]["lr"] == pytest.approx(0.1 / 3)  # the LR of step 3
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG continues where the save left it


def test_a_crash_mid_save_leaves_the_previous_state_and_its_half_tag_is_never_read(tmp_path, caplog):
    model, opt, sched, eng = _setup()
    _train(model, opt, sched, 2)
    resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 2, [])
    at_2 = {k: v.clone() for k, v in model.state_dict().items()}
    _train(model, opt, sched, 2)
    eng.crash_in_save = True
    with pytest.raises(Crash):  # killed while DeepSpeed writes step 4's shards
        resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 4, [])
    assert (tmp_path / "step4").is_dir() and resume.read_pointer(tmp_path)["tag"] == "step2"

    model, opt, sched, eng = _setup(seed=1)
    assert resume.load_sharded(str(tmp_path), "fp", eng, opt, sched)["step"] == 2
    assert all(torch.equal(v, at_2[k]) for k, v in model.state_dict().items())
    _train(model, opt, sched, 2)
    resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 4, [])  # the half tag is rewritten, step2 removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [resume.POINTER, "step4"]
    model, opt, sched, eng = _setup()
    assert resume.load_sharded(str(tmp_path), "fp", eng, opt, sched)["step"] == 4


@pytest.mark.parametrize("change, reason", [
    ({"fingerprint": "other"}, "belongs to another run"),
    ({"world_size": 8}, "saved by 8 rank(s) with ZeRO-2, this run has 1 with ZeRO-2"),
    ({"zero_stage": 3}, "saved by 1 rank(s) with ZeRO-3"),
    ({"tag": "step9"}, "its tag 'step9' is missing"),
])
def test_a_state_this_run_cannot_use_starts_fresh_and_says_why(tmp_path, caplog, change, reason):
    model, opt, sched, eng = _setup()
    resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 2, [])
    meta = {**resume.read_pointer(tmp_path), **change}
    (tmp_path / resume.POINTER).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        assert resume.load_sharded(str(tmp_path), "fp", eng, opt, sched) is None
    assert reason in caplog.text and "starting fresh" in caplog.text


def test_nothing_saved_or_an_unreadable_record_starts_fresh(tmp_path, caplog):
    model, opt, sched, eng = _setup()
    assert resume.load_sharded(str(tmp_path / "none"), "fp", eng, opt, sched) is None
    (tmp_path / resume.POINTER).write_text('{"fingerprint": "fp", "ta')  # cannot happen (os.replace), still
    with caplog.at_level(logging.WARNING):
        assert resume.load_sharded(str(tmp_path), "fp", eng, opt, sched) is None
    assert "unreadable" in caplog.text


def test_a_non_finite_state_is_refused_and_the_committed_one_kept(tmp_path):
    model, opt, sched, eng = _setup()
    resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 2, [])
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="refusing to save the resume state of step 4"):
        resume.save_sharded(str(tmp_path), "fp", eng, opt, sched, 4, [])
    assert resume.read_pointer(tmp_path)["step"] == 2 and not (tmp_path / "step4").exists()


def test_a_rank_that_cannot_see_the_others_files_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(resume, "SHARED_FS_WAIT_S", 0.0)  # no waiting for the file to show up
    class TwoRanksApart(OneRankDeepSpeed):
        world_size = 2  # rank 1's rank1.pt never shows up here: resume_dir is not shared

    model, opt, sched, _ = _setup()
    with pytest.raises(RuntimeError, match="shared filesystem"):
        resume.save_sharded(str(tmp_path), "fp", TwoRanksApart(model, opt, 1.0), opt, sched, 2, [])
    assert resume.read_pointer(tmp_path) is None  # nothing committed


# ---------------------------------------------------------------------------------------- launched jobs
def test_the_payload_carries_resume_dir_as_an_absolute_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the ranks run in the work dir: a relative path would move
    block = launch.resume_block("data/06_models/_resume/sft", "fp", True)
    assert block == {"dir": str(tmp_path / "data/06_models/_resume/sft"), "fingerprint": "fp",
                     "keep_final_state": True}
    assert launch.resume_block(None, "fp", True) is None


def test_rank0_records_logged_steps_per_run(tmp_path):
    run = {"dir": str(tmp_path / "r"), "fingerprint": "fp", "keep_final_state": True}
    first = launch.LoggedSteps(run, 2)
    assert not first.seen(1)
    first.mark(1)
    first.mark(3)
    again = launch.LoggedSteps(run, 2)  # a relaunch of the same run: steps 1-3 were passed on
    assert again.seen(3) and not again.seen(4)
    assert not launch.LoggedSteps({**run, "fingerprint": "other"}, 2).seen(1)  # another run
    assert not launch.LoggedSteps(run, 4).seen(1)  # another world size starts fresh, so logs afresh
    assert not launch.LoggedSteps(None, 2).seen(1)
