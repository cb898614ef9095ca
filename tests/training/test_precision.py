"""Precision: fp32 master weights with bf16 autocast on the torch engine; float32 untouched; DeepSpeed's
bf16 with its overflow check forced on (the 2-rank NaN-step run is test_deepspeed_parity's).

Why master weights (worked numbers): the tiny model's weights are ~N(0, 0.02). bf16 keeps 8
significant bits, so near |w| = 0.02 its spacing is 2^-6 · 2^-7 ≈ 1.2e-4, and an AdamW step moves a
weight by about lr = 2e-6 — 60 times less than half a spacing: in bf16 it rounds away for every
weight except those within ~3e-4 of zero (about 4% of them). An fp32 master weight keeps every
step (spacing ~1.9e-9 at 0.02), and after enough steps the accumulated change shows in bf16 too.
"""

import copy

import pytest
import torch

from nemotron_cascade.training import engines, packing, placement, sft

LR = 2e-6


@pytest.fixture()
def bf16_model(tiny_model):
    return tiny_model.to(torch.bfloat16)


@pytest.fixture()
def blocks(world_samples, tokenizer):
    return packing.prepare_blocks(world_samples, tokenizer, 128)[0]


def _changed_share(model, init: dict) -> float:
    """Share of parameter entries that differ from ``init`` (compared in the parameter's dtype)."""
    changed = sum(int((p != init[n].to(p.dtype)).sum()) for n, p in model.named_parameters())
    return changed / sum(p.numel() for p in model.parameters())


def _cfg(steps: int, **kw) -> sft.SFTConfig:
    return sft.SFTConfig(lr=LR, max_steps=steps, warmup_steps=0, batch_size=2, weight_decay=0.0, log_every=1, **kw)


def test_a_pure_bf16_adamw_step_at_lr_2e_6_rounds_away_but_the_fp32_master_keeps_it(bf16_model, blocks):
    init = {n: p.detach().clone() for n, p in bf16_model.named_parameters()}
    pure = copy.deepcopy(bf16_model)  # the old torch engine: AdamW on the bf16 weights themselves
    opt = torch.optim.AdamW(pure.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.0)
    sft.token_loss(pure, *sft.collate(blocks[:2])).backward()
    opt.step()
    assert _changed_share(pure, init) < 0.06  # only weights near zero move (see the module docstring)

    seen = {}

    def master(metrics, step):  # after the first step, inside the loop
        seen["dtypes"] = {p.dtype for p in bf16_model.parameters()}
        seen["share"] = _changed_share(bf16_model, init)
    sft.train_sft(bf16_model, blocks, _cfg(1), on_metrics=master)
    assert seen["dtypes"] == {torch.float32} and seen["share"] == 1.0  # every master weight took the step
    assert {p.dtype for p in bf16_model.parameters()} == {torch.bfloat16}  # saved in the configured dtype


def test_the_kept_updates_add_up_in_the_saved_bf16_weights(bf16_model, blocks):
    """30 steps at lr 2e-6: pure bf16 stays stuck on the same ~4% of entries; through the fp32
    master ~6e-5 accumulates, past half a bf16 spacing for a fifth of the weights."""
    init = {n: p.detach().clone() for n, p in bf16_model.named_parameters()}
    pure = copy.deepcopy(bf16_model)
    opt = torch.optim.AdamW(pure.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.0)
    for i in range(30):
        opt.zero_grad()
        sft.token_loss(pure, *sft.collate(sft.batches(blocks, 2, i, 0))).backward()
        opt.step()
    sft.train_sft(bf16_model, blocks, _cfg(30, grad_clip=1e9))
    assert _changed_share(pure, init) < 0.06 < 0.15 < _changed_share(bf16_model, init)


def _forward_probe(model):
    """A forward hook on the first MLP projection: (autocast on?, input dtype, output dtype) per call."""
    calls = []
    layer = model.model.layers[0].mlp.down_proj
    handle = layer.register_forward_hook(
        lambda mod, args, out: calls.append((torch.is_autocast_enabled("cpu"), mod.weight.dtype, out.dtype)))
    return calls, handle


@pytest.mark.parametrize("dtype, expected", [
    # bf16 model: fp32 master weight, the matmul runs in bf16 under autocast
    (torch.bfloat16, (True, torch.float32, torch.bfloat16)),
    # float32 (the embedded default): no autocast, everything fp32, exactly as before
    (torch.float32, (False, torch.float32, torch.float32)),
])
def test_autocast_runs_the_matmuls_in_bf16_only_for_a_bf16_model(tiny_model, blocks, dtype, expected):
    model = tiny_model.to(dtype)
    calls, handle = _forward_probe(model)
    sft.train_sft(model, blocks, _cfg(2))
    handle.remove()
    assert calls and set(calls) == {expected}


def test_float32_keeps_the_same_parameter_objects_and_no_cast(tiny_model, blocks):
    before = {n: (p, p.data_ptr()) for n, p in tiny_model.named_parameters()}
    prec = placement.precision_for(tiny_model, "cpu", "torch", False)
    assert prec == placement.Precision("float32", "cpu") and not prec.autocast and not prec.master_weights
    sft.train_sft(tiny_model, blocks, _cfg(1))
    assert all(p is before[n][0] and p.data_ptr() == before[n][1] for n, p in tiny_model.named_parameters())


@pytest.mark.parametrize("dtype, engine, ds_bf16, expected", [
    ("float32", "torch", False, placement.Precision("float32", "cpu")),
    ("bfloat16", "torch", False, placement.Precision("bfloat16", "cpu", master_weights=True, autocast=True)),
    # DeepSpeed's bf16 keeps the fp32 master copy itself: the loop adds nothing
    ("bfloat16", "deepspeed", True, placement.Precision("bfloat16", "cpu")),
    # DeepSpeed without bf16: fp32 master weights, no autocast (the update is never a bf16 AdamW step)
    ("bfloat16", "deepspeed", False, placement.Precision("float32", "cpu", master_weights=True)),
])
def test_precision_table(tiny_model, dtype, engine, ds_bf16, expected):
    assert placement.precision_for(tiny_model.to(getattr(torch, dtype)), "cpu", engine, ds_bf16) == expected


def test_float16_is_refused(tiny_model):
    with pytest.raises(ValueError, match="float16.*loss scaler"):
        placement.precision_for(tiny_model.to(torch.float16), "cpu", "torch", False)


def test_deepspeed_bf16_always_checks_for_overflow(caplog):
    """A ZeRO bf16 optimiser with check_grad_overflow off applies a NaN update: the engine turns it on."""
    assert engines.with_overflow_check({"bf16": {"enabled": True}})["bf16"]["check_grad_overflow"] is True
    forced = engines.with_overflow_check({"bf16": {"enabled": True, "check_grad_overflow": False}})
    assert forced["bf16"]["check_grad_overflow"] is True and "overridden" in caplog.text
    assert engines.with_overflow_check({"bf16": {"enabled": False}}) == {"bf16": {"enabled": False}}  # fp32 as is
    assert engines.bf16_enabled("zero2") and not engines.bf16_enabled({"bf16": {"enabled": False}})


class _AppliedNaN:
    """A stand-in DeepSpeed engine whose step applies a NaN update (the overflow check missing)."""

    def __init__(self, module):
        self.module = module

    def step(self):
        with torch.no_grad():
            next(self.module.parameters()).fill_(float("nan"))

    def get_global_grad_norm(self):
        return float("nan")


def test_a_nan_update_deepspeed_applied_stops_the_run(tiny_model):
    from nemotron_cascade.training.faults import NonFiniteError

    eng = object.__new__(engines.DeepSpeedEngine)
    eng.engine, eng.module, eng.rank = _AppliedNaN(tiny_model), tiny_model, 0
    eng.all_true = bool
    with pytest.raises(NonFiniteError, match="DeepSpeed applied an update whose gradient norm is nan"):
        eng.step()


def test_a_discarded_nan_update_passes(tiny_model):
    import math

    eng = object.__new__(engines.DeepSpeedEngine)
    eng.engine, eng.module, eng.rank, eng.all_true = _AppliedNaN(tiny_model), tiny_model, 0, bool
    eng.engine.step = lambda: None  # discarded: the weights stay finite
    assert math.isnan(eng.step())  # the NaN norm goes back to the guard, which counts the step as skipped
