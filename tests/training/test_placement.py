"""Device placement: the ``device`` setting's resolution, the loop placing the model once, and every
tensor of an SFT, GRPO and reward-model step on the model's device (DeviceAudit's virtual device:
real on the CPU, see training/device_audit.py)."""

import pytest
import torch

from nemotron_cascade.training import device_audit, packing, placement, sft
from nemotron_cascade.training.device_audit import DeviceAudit


@pytest.fixture()
def fake_cuda(monkeypatch):
    """torch sees two CUDA devices, the current one 0 (nothing is moved there in these tests)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


@pytest.mark.parametrize("setting, expected", [
    ("auto", "cpu"),  # this machine: no GPU, auto is the CPU
    ("cpu", "cpu"),
])
def test_resolution_here(setting, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert placement.resolve_device(setting) == expected


@pytest.mark.parametrize("setting, local_rank, expected", [
    ("auto", None, "cuda:0"),     # a GPU is there: auto picks it (the current device)
    ("auto", "1", "cuda:1"),      # a launched rank: its LOCAL_RANK's GPU, as DeepSpeed places it
    ("cuda", None, "cuda:0"),     # the current CUDA device, named
    ("cuda:1", None, "cuda:1"),
    ("cpu", None, "cpu"),         # the CPU even where a GPU is
])
def test_resolution_with_a_gpu(fake_cuda, monkeypatch, setting, local_rank, expected):
    if local_rank is not None:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert placement.resolve_device(setting) == expected


@pytest.mark.parametrize("setting, gpu, match", [
    ("cuda", False, "sees no CUDA GPU"),       # never a silent CPU run when a GPU was asked for
    ("cuda:3", True, "only 2 CUDA device"),
    ("gpu", True, "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("cuda:x", True, "must be"),
])
def test_bad_settings_are_refused(fake_cuda, monkeypatch, setting, gpu, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    with pytest.raises(ValueError, match=match):
        placement.resolve_device(setting)


def test_a_scope_sets_the_device_of_the_stages_inside_it(fake_cuda):
    assert placement.current_device() == "cuda:0"  # auto outside any scope
    with placement.scope("cpu") as dev:
        assert dev == "cpu" and placement.current_device() == "cpu"
        with placement.scope("cuda:1"):
            assert placement.current_device() == "cuda:1"
        assert placement.current_device() == "cpu"
    assert placement.current_device() == "cuda:0"
    with pytest.raises(ValueError, match="must be"), placement.scope("tpu"):
        pass


@pytest.fixture()
def blocks(world_samples, tokenizer):
    return packing.prepare_blocks(world_samples, tokenizer, 128)[0]


def _record_place(monkeypatch):
    calls = []
    monkeypatch.setattr(placement, "place", lambda model, device=None: calls.append(device) or model)
    return calls


def test_the_loop_places_the_model_once_on_the_scopes_device(fake_cuda, monkeypatch, tiny_model, blocks):
    """With a GPU visible, ``auto`` sends SFT to cuda:0 and a node's scope to its device: one
    placement per stage, when it starts (here recorded, not done: there is no GPU)."""
    calls = _record_place(monkeypatch)
    cfg = sft.SFTConfig(max_steps=2, batch_size=2, log_every=1)
    sft.train_sft(tiny_model, blocks, cfg)
    with placement.scope("cpu"):
        sft.train_sft(tiny_model, blocks, cfg)
    assert calls == ["cuda:0", "cpu"]


def test_deepspeed_places_the_model_itself(monkeypatch, tiny_model, tokenizer, resume_pairs):
    from ds_fakes import OneRankDeepSpeed

    from nemotron_cascade.training import loop
    from nemotron_cascade.training import reward_model as rm_lib

    calls = _record_place(monkeypatch)
    monkeypatch.setattr(loop.engines, "make_loop_engine", lambda kind, model, opt, ds, grad_clip, micro,
                        precision=None: OneRankDeepSpeed(model, opt, grad_clip))
    monkeypatch.setattr(loop.engines, "bf16_enabled", lambda config: False)
    train, val = resume_pairs
    model = rm_lib.reward_model_from_scratch(tokenizer, {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                         "num_kv_heads": 1, "intermediate_size": 64})
    rm_lib.train_reward_model(model, tokenizer, train[:10], val[:4], rm_lib.RMConfig(
        epochs=1, batch_size=5, engine="deepspeed"))
    assert calls == []


@pytest.fixture()
def resume_pairs():
    from nemotron_cascade.data import preferences, world

    pairs = preferences.build_pairs(world.generate_tasks("general", "sft", 40, 0), ["general"], None, 0.25, 0)
    return [p for p in pairs if p["split"] == "train"], [p for p in pairs if p["split"] == "validation"]


# ----------------------------------------------------------------------- every tensor on the device
def test_every_tensor_of_an_sft_step_is_on_the_models_device(tiny_model, blocks):
    with DeviceAudit(tiny_model, "cpu") as audit:
        sft.train_sft(tiny_model, blocks, sft.SFTConfig(max_steps=2, batch_size=2, log_every=1))
    assert audit.findings == [], audit.report()


def test_every_tensor_of_a_grpo_step_with_hf_rollouts_is_on_the_models_device(tiny_model, tokenizer):
    from nemotron_cascade.data import world
    from nemotron_cascade.rewards.registry import get_reward
    from nemotron_cascade.rl import trainer

    rows = world.generate_tasks("math", "rl", 8, 0)
    cfg = trainer.GRPOConfig(max_steps=2, prompts_per_step=2, group_size=2, length_schedule=((0, 8),),
                             micro_batch_size=2)
    with DeviceAudit(tiny_model, "cpu") as audit:
        hist = trainer.train_grpo(tiny_model, tokenizer, rows, get_reward("math"), cfg, None, world.render_prompt)
    assert len(hist) == 2 and audit.findings == [], audit.report()


def test_every_tensor_of_a_reward_model_step_is_on_the_models_device(tokenizer, resume_pairs):
    from nemotron_cascade.training import reward_model as rm_lib

    train, val = resume_pairs
    model = rm_lib.reward_model_from_scratch(tokenizer, {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                         "num_kv_heads": 1, "intermediate_size": 64})
    with DeviceAudit(model, "cpu") as audit:
        rm_lib.train_reward_model(model, tokenizer, train[:10], val[:4], rm_lib.RMConfig(epochs=1, batch_size=5))
    assert audit.findings == [], audit.report()


# ------------------------------------------------------------------------- the audit finds what it must
def _labels_left_behind(model, ids, labels, pos):
    """token_loss as it would be written wrongly: the labels never follow the model."""
    dev = next(model.parameters()).device
    logits = model(input_ids=ids.to(dev), position_ids=pos.to(dev), use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)


@pytest.mark.parametrize("step, op, what", [
    # a batch never moved: the embedding meets host ids
    (lambda m, ids, labels, pos: m(input_ids=ids, use_cache=False).logits.sum(), "embedding", "(2, 128) int64"),
    # moved inputs, labels left behind: the loss meets host labels
    (_labels_left_behind, "cross_entropy", "(254,) int64"),
])
def test_the_audit_names_a_tensor_left_on_the_host(tiny_model, blocks, step, op, what):
    with DeviceAudit(tiny_model, "cpu") as audit:  # the batch is made inside, as a step makes it
        step(tiny_model, *sft.collate(blocks[:2]))
    assert audit.findings and audit.findings[0].op == op and what in audit.findings[0].what, audit.report()
    assert "test_placement.py" in audit.findings[0].where  # the line that called it


def test_on_a_real_device_a_parameter_left_on_the_cpu_is_named(tiny_model):
    """Real mode (an accelerator's check; here the 'device' is meta, and the model stayed on the CPU)."""
    audit = DeviceAudit(tiny_model, "meta", virtual=False)
    with audit:
        tiny_model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=False)
    names = " ".join(f.what for f in audit.findings)
    assert "model.embed_tokens.weight" in names and "on cpu" in names
    assert device_audit.Finding("x", "y", "z").__str__() == "x in y (at z)"


# --------------------------------------------------------------- what runs beside the loop follows the stage
def _record_resolved(monkeypatch):
    """``placement.place`` recording the device each call resolves to (nothing is moved)."""
    calls = []
    monkeypatch.setattr(placement, "place",
                        lambda model, device=None: calls.append(placement.resolve_device(device)) or model)
    return calls


def test_the_reward_model_runs_where_the_stage_runs(fake_cuda, monkeypatch, tiny_model, tokenizer):
    from nemotron_cascade.datasets.checkpoint import Checkpoint
    from nemotron_cascade.rewards.reward_model import RewardModelReward

    calls = _record_resolved(monkeypatch)
    with placement.scope("cuda:1"):  # the RL node's scope, where the loop places the policy
        RewardModelReward(Checkpoint(model=tiny_model, tokenizer=tokenizer))
    RewardModelReward(Checkpoint(model=tiny_model, tokenizer=tokenizer), device="cpu")
    assert calls == ["cuda:1", "cpu"]


def test_evaluation_generates_on_its_device(fake_cuda, monkeypatch, tiny_model, tokenizer):
    from nemotron_cascade.data import world
    from nemotron_cascade.datasets.checkpoint import Checkpoint
    from nemotron_cascade.evaluation.benchmarks import EvalConfig
    from nemotron_cascade.pipelines.evaluation import nodes

    calls = _record_resolved(monkeypatch)
    rows = world.generate_tasks("math", "bench", 2, 0)
    cfg = EvalConfig(device="cuda:1", max_new_tokens=4, max_items_per_domain=2)
    metrics, _ = nodes.evaluate_policy(Checkpoint(model=tiny_model, tokenizer=tokenizer), rows, cfg)
    assert calls == ["cuda:1"] and "math" in metrics
