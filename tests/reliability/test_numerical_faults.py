"""Numerical faults injected for real into the three training loops (SFT, GRPO, reward model).

Faults are produced inside the real computation, not mocked: a forward hook that turns the logits
of chosen training forwards into +inf (the loss becomes NaN), a gradient hook that turns a
parameter's gradient into NaN (the clipped grad norm becomes NaN), a reward function that returns
NaN. The policy under test (:mod:`nemotron_cascade.training.faults`): the step is skipped (the
parameters after it are those before it, bit for bit), a warning says so, the running count is
logged as ``faults/skipped_steps``, the run continues and learns again; more than
``max_bad_steps`` bad steps in a row stop the run with a clear error; a model or resume state with
NaN/inf tensors is never written.
"""

from __future__ import annotations

import math

import pytest
import torch

from nemotron_cascade import models, tracking
from nemotron_cascade.data import preferences, world
from nemotron_cascade.generation.hf import HFGenerator
from nemotron_cascade.rl import trainer
from nemotron_cascade.training import packing, resume, sft
from nemotron_cascade.training import reward_model as rm_lib
from nemotron_cascade.training.faults import FaultGuard, NonFiniteError, check_finite_state

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)


# --------------------------------------------------------------------------------------------
# fault injectors
def inf_output_at(module: torch.nn.Module, bad_calls: set[int] | None):
    """Make the grad-enabled forwards of ``module`` number ``bad_calls`` (1-based; ``None``: all)
    return +inf. Generation and validation run without grad and are left alone."""
    calls = [0]

    def hook(mod, args, output):
        if not torch.is_grad_enabled():
            return None
        calls[0] += 1
        if bad_calls is None or calls[0] in bad_calls:
            return output + float("inf")
        return None

    return module.register_forward_hook(hook)


def nan_grad_at(param: torch.Tensor, bad_calls: set[int]):
    """Make the gradient of ``param`` NaN in the backward passes number ``bad_calls`` (1-based)."""
    calls = [0]

    def hook(grad):
        calls[0] += 1
        return grad * float("nan") if calls[0] in bad_calls else grad

    return param.register_hook(hook)


class Snapshots:
    """An ``on_metrics`` callback keeping the parameters after every reported step."""

    def __init__(self, model):
        self.model = model
        self.after = {0: self.params()}

    def params(self):
        return [p.detach().clone() for p in self.model.parameters()]

    def __call__(self, metrics, step):
        self.after[step] = self.params()

    def same(self, a: int, b: int) -> bool:
        return all(torch.equal(x, y) for x, y in zip(self.after[a], self.after[b]))


@pytest.fixture()
def fault_metrics(monkeypatch):
    """The ``faults/...`` metrics the loops log (through the project's ``tracking.log_metrics``)."""
    seen: list[tuple[int, dict]] = []
    real = tracking.log_metrics

    def spy(metrics, step=None, prefix=""):
        if any(k.startswith("faults/") for k in metrics):
            seen.append((step, dict(metrics)))
        return real(metrics, step, prefix)

    monkeypatch.setattr(tracking, "log_metrics", spy)
    return seen


def skipped_counts(seen) -> list[tuple[int, float]]:
    return [(step, m["faults/skipped_steps"]) for step, m in seen]


def fresh_model(tokenizer):
    return models.build_tiny_model(tokenizer, models.TinyModelConfig(**TINY, seed=0))


# --------------------------------------------------------------------------------------------
# SFT
@pytest.fixture(scope="module")
def blocks(world_samples, tokenizer):
    return packing.prepare_blocks(world_samples, tokenizer, 512)[0]


def _sft(model, blocks, steps=5, **kw):
    snaps = Snapshots(model)
    cfg = sft.SFTConfig(lr=1e-2, max_steps=steps, warmup_steps=1, batch_size=2, log_every=1,
                        **{k: v for k, v in kw.items() if k in sft.SFTConfig.__dataclass_fields__})
    hist = sft.train_sft(model, blocks, cfg, on_metrics=snaps, resume_dir=kw.get("resume_dir"), fingerprint="f")
    return hist, snaps


@pytest.mark.parametrize("inject", ["inf_loss", "nan_grad"])
def test_sft_skips_a_poisoned_step_and_goes_on(inject, blocks, tokenizer, fault_metrics, caplog):
    model = fresh_model(tokenizer)
    if inject == "inf_loss":
        inf_output_at(model.get_output_embeddings(), {3})
    else:
        nan_grad_at(next(model.parameters()), {3})
    with caplog.at_level("WARNING", logger="nemotron_cascade.training.faults"):
        hist, snaps = _sft(model, blocks)
    assert [h["step"] for h in hist] == [1, 2, 3, 4, 5]  # the run went on to the end
    assert snaps.same(2, 3)  # step 3 changed nothing
    assert not snaps.same(3, 4) and not snaps.same(1, 2)  # the steps around it trained
    assert math.isnan(hist[2]["grad_norm"]) and all(math.isfinite(h["grad_norm"]) for h in hist[3:])
    assert ("loss=" if inject == "inf_loss" else "grad_norm=nan") in caplog.text
    assert "sft step 3" in caplog.text and "optimiser step skipped" in caplog.text
    assert skipped_counts(fault_metrics) == [(3, 1.0)]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sft_a_skipped_step_changes_nothing_but_that_step(blocks, tokenizer):
    """A skipped step still advances the LR schedule (and the data order), so the steps after it
    run on the schedule of a clean run; only the update of the skipped step is missing."""
    poisoned = fresh_model(tokenizer)
    inf_output_at(poisoned.get_output_embeddings(), {1})
    hist, _ = _sft(poisoned, blocks, steps=3)
    clean, _ = _sft(fresh_model(tokenizer), blocks, steps=3)
    assert [h["lr"] for h in hist] == [h["lr"] for h in clean]  # the schedule still advanced
    assert [h["loss"] for h in hist[1:]] != [h["loss"] for h in clean[1:]]  # step 1 really was skipped
    assert math.isnan(hist[0]["loss"]) and all(math.isfinite(h["loss"]) for h in hist[1:])


@pytest.mark.parametrize("bad, max_bad_steps, fails_at", [
    ({2, 3}, 1, 3),       # two in a row with one allowed: stop at the second
    ({2, 4}, 1, None),    # two, not in a row: both skipped, the run finishes
    ({1, 2, 3}, 3, None),  # exactly the threshold: still allowed
    ({2}, 0, 2),          # max_bad_steps 0: the first bad step stops the run (the old behaviour)
])
def test_sft_stops_after_too_many_bad_steps_in_a_row(bad, max_bad_steps, fails_at, blocks, tokenizer,
                                                     fault_metrics):
    model = fresh_model(tokenizer)
    inf_output_at(model.get_output_embeddings(), bad)
    if fails_at is None:
        hist, _ = _sft(model, blocks, max_bad_steps=max_bad_steps)
        assert len(hist) == 5 and skipped_counts(fault_metrics)[-1] == (max(bad), float(len(bad)))
        return
    with pytest.raises(NonFiniteError, match=rf"sft: \d+ consecutive steps with non-finite values \(last: step "
                                             rf"{fails_at}, loss=nan.*max_bad_steps={max_bad_steps}; stopping"):
        _sft(model, blocks, max_bad_steps=max_bad_steps)


def test_sft_with_a_poisoned_model_never_writes_its_resume_state(tmp_path, blocks, tokenizer):
    """A parameter turned NaN mid-run (not through a gradient): every later step is skipped and the
    mid-stage save refuses the state, leaving nothing on disk for a rerun to resume from."""
    model = fresh_model(tokenizer)
    target = next(model.parameters())

    class Poison(Snapshots):
        def __call__(self, metrics, step):
            if step == 1:
                with torch.no_grad():
                    target[0, 0] = float("nan")

    cfg = sft.SFTConfig(max_steps=5, warmup_steps=1, batch_size=2, log_every=1, checkpoint_every=2, max_bad_steps=5)
    with pytest.raises(NonFiniteError, match="refusing to save the resume state of step 2.*non-finite values in"):
        sft.train_sft(model, blocks, cfg, on_metrics=Poison(model), resume_dir=str(tmp_path), fingerprint="f")
    assert not (tmp_path / "state.pt").exists() and not (tmp_path / "state.pt.tmp").exists()


def test_sft_counter_reaches_mlflow(tmp_path, monkeypatch, blocks, tokenizer):
    """The counter lands in the active MLflow run (the one the stage hook opens in a Kedro run)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as mlflow_utils

    old = mlflow_utils._tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        model = fresh_model(tokenizer)
        inf_output_at(model.get_output_embeddings(), {2, 4})
        with mlflow.start_run() as run:
            _sft(model, blocks)
        history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "faults/skipped_steps")
        assert [(m.step, m.value) for m in history] == [(2, 1.0), (4, 2.0)]
    finally:
        mlflow.set_tracking_uri(old)


# --------------------------------------------------------------------------------------------
# GRPO
ROWS = [{"id": f"t{i}", "prompt": f"Write something {i}."} for i in range(6)]


def _render(row, thinking):
    return f"<|im_start|>user\n{row['prompt']}<|im_end|>\n<|im_start|>assistant\n"


def varied_reward(responses, rows):
    """A deterministic reward that differs between samples, so every step has a gradient."""
    return [(sum(map(ord, r)) % 7) / 7 for r in responses]


def nan_reward_at(bad_calls: set[int] | None):
    calls = [0]

    def flaky_verifier(responses, rows):
        calls[0] += 1
        scores = varied_reward(responses, rows)
        if bad_calls is None or calls[0] in bad_calls:
            scores[1] = float("nan")
        return scores

    return flaky_verifier


def _grpo(model, tokenizer, reward=varied_reward, steps=4, max_bad_steps=3, **kw):
    snaps = Snapshots(model)
    cfg = trainer.GRPOConfig(max_steps=steps, prompts_per_step=2, group_size=2, lr=1e-2, length_schedule=((0, 4),),
                             overlong_filter=False, max_bad_steps=max_bad_steps, seed=0)
    hist = trainer.train_grpo(model, tokenizer, ROWS, reward, cfg, HFGenerator(model, tokenizer), _render,
                              on_metrics=snaps, **kw)
    return hist, snaps


@pytest.mark.parametrize("inject", ["nan_reward", "inf_loss", "nan_grad"])
def test_grpo_skips_a_poisoned_step_and_goes_on(inject, tokenizer, fault_metrics, caplog):
    model, reward = fresh_model(tokenizer), varied_reward
    if inject == "nan_reward":
        reward = nan_reward_at({2})
    elif inject == "inf_loss":
        inf_output_at(model.get_output_embeddings(), {2})
    else:
        nan_grad_at(next(model.parameters()), {2})
    with caplog.at_level("WARNING", logger="nemotron_cascade.training.faults"):
        hist, snaps = _grpo(model, tokenizer, reward)
    assert [h["step"] for h in hist] == [1, 2, 3, 4]
    assert snaps.same(1, 2)  # step 2 changed nothing
    assert not snaps.same(0, 1) and not snaps.same(2, 3)  # the steps around it trained
    assert math.isnan(hist[1]["grad_norm"]) and all(math.isfinite(h["grad_norm"]) for h in hist[2:])
    assert "GRPO step 2" in caplog.text and "optimiser step skipped" in caplog.text
    if inject == "nan_reward":  # the warning names the reward and says how much of the batch was bad
        assert "reward=1 of 4 values non-finite (from reward 'flaky_verifier')" in caplog.text
    assert skipped_counts(fault_metrics) == [(2, 1.0)]


def test_grpo_a_reward_that_keeps_returning_nan_stops_the_run_naming_it(tokenizer, fault_metrics):
    with pytest.raises(NonFiniteError, match=r"GRPO: 2 consecutive steps .*last: step 2, reward=1 of 4 values "
                                             r"non-finite \(from reward 'math'\).*max_bad_steps=1"):
        _grpo(fresh_model(tokenizer), tokenizer, nan_reward_at(None), max_bad_steps=1, reward_name="math")
    assert skipped_counts(fault_metrics) == [(1, 1.0), (2, 2.0)]


def test_grpo_bad_steps_are_consecutive_across_reward_and_gradient_faults(tokenizer):
    """A NaN reward at step 1 and a NaN gradient at step 2 are two bad steps in a row."""
    model = fresh_model(tokenizer)
    nan_grad_at(next(model.parameters()), {1})  # the first backward is step 2's: step 1 never reaches it
    with pytest.raises(NonFiniteError, match=r"GRPO: 2 consecutive steps .*last: step 2, grad_norm=nan"):
        _grpo(model, tokenizer, nan_reward_at({1}), max_bad_steps=1)


# --------------------------------------------------------------------------------------------
# reward model
@pytest.fixture(scope="module")
def pairs():
    rows = world.generate_tasks("general", "sft", 40, 0)
    built = preferences.build_pairs(rows, ["general"], None, 0.25, 0)
    return [p for p in built if p["split"] == "train"], [p for p in built if p["split"] == "validation"]


def _rm(tokenizer, pairs, bad=None, inject="inf_loss", max_bad_steps=3):
    rm = rm_lib.reward_model_from_scratch(tokenizer, TINY)
    torch.nn.init.normal_(rm.score.weight, std=0.1)  # a zero head has a zero gradient for the body
    if inject == "inf_loss":
        inf_output_at(rm.score, bad)
    else:
        nan_grad_at(rm.score.weight, bad)
    snaps = Snapshots(rm)
    cfg = rm_lib.RMConfig(epochs=1, batch_size=4, lr=1e-3, warmup_steps=1, max_length=64, max_bad_steps=max_bad_steps)
    hist = rm_lib.train_reward_model(rm, tokenizer, pairs[0][:16], pairs[1][:8], cfg, on_metrics=snaps)
    return hist, snaps


@pytest.mark.parametrize("inject", ["inf_loss", "nan_grad"])
def test_reward_model_skips_a_poisoned_step_and_goes_on(inject, tokenizer, pairs, fault_metrics, caplog):
    with caplog.at_level("WARNING", logger="nemotron_cascade.training.faults"):
        hist, snaps = _rm(tokenizer, pairs, {2}, inject)
    assert [h["step"] for h in hist] == [1, 2, 3, 4]
    assert snaps.same(1, 2) and not snaps.same(2, 3) and not snaps.same(0, 1)
    assert "reward model step 2" in caplog.text and "optimiser step skipped" in caplog.text
    assert skipped_counts(fault_metrics) == [(2, 1.0)]
    assert "val_accuracy" in hist[-1]  # the final validation still ran


def test_reward_model_stops_after_too_many_bad_steps(tokenizer, pairs):
    with pytest.raises(NonFiniteError, match=r"reward model: 3 consecutive steps .*max_bad_steps=2"):
        _rm(tokenizer, pairs, None, max_bad_steps=2)


# --------------------------------------------------------------------------------------------
# poisoned states are never written
def test_resume_state_refuses_poisoned_parameters_and_keeps_the_last_good_one(tmp_path, tokenizer):
    model = fresh_model(tokenizer)
    opt = torch.optim.AdamW(model.parameters())
    resume.save(str(tmp_path), "f", model, opt, None, 2, [])
    good = (tmp_path / "state.pt").read_bytes()
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"refusing to save the resume state of step 4 .*non-finite values in "
                                             r"2 tensors \(model\.embed_tokens\.weight, lm_head\.weight\)"):  # tied
        resume.save(str(tmp_path), "f", model, opt, None, 4, [])
    assert (tmp_path / "state.pt").read_bytes() == good and not (tmp_path / "state.pt.tmp").exists()


def test_resume_state_refuses_a_poisoned_optimiser(tmp_path, tokenizer):
    model = fresh_model(tokenizer)
    opt = torch.optim.AdamW(model.parameters())
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    next(iter(opt.state.values()))["exp_avg_sq"].fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"optimizer\.state\.0\.exp_avg_sq"):
        resume.save(str(tmp_path), "f", model, opt, None, 1, [])
    assert not tmp_path.joinpath("state.pt").exists()


def test_checkpoint_dataset_refuses_a_poisoned_model(tmp_path, tokenizer):
    from kedro.io.core import DatasetError

    from nemotron_cascade.datasets.checkpoint import Checkpoint, CheckpointDataset

    model = fresh_model(tokenizer)
    with torch.no_grad():
        model.model.norm.weight[3] = float("nan")
    with pytest.raises(DatasetError, match=r"refusing to save checkpoint .*model\.norm\.weight"):
        CheckpointDataset(str(tmp_path / "policy")).save(Checkpoint(model, tokenizer))
    assert not (tmp_path / "policy").exists() and not list(tmp_path.glob(".*tmp*"))
    with torch.no_grad():
        model.model.norm.weight[3] = 1.0
    CheckpointDataset(str(tmp_path / "policy")).save(Checkpoint(model, tokenizer))  # a healthy one saves
    assert (tmp_path / "policy" / "model.safetensors").exists()


def test_guard_rejects_a_negative_threshold_and_checks_healthy_states(tokenizer):
    with pytest.raises(ValueError, match="max_bad_steps"):
        FaultGuard("sft", -1)
    check_finite_state("a fresh model", fresh_model(tokenizer))  # no error
