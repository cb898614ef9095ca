"""The gpu profile's parameters: loaded as Kedro loads them, every override a key of base."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONF = Path(__file__).resolve().parents[2] / "conf"
# top-level keys only the gpu profile has, on purpose (none: the sources are the catalog's)
GPU_ONLY: set[str] = set()


def _loader(env: str):
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    return OmegaConfigLoader(conf_source=str(CONF), env=env, **settings.CONFIG_LOADER_ARGS)


def _paths(d: dict, prefix: tuple = ()) -> set[tuple]:
    out = set()
    for k, v in d.items():
        out.add(prefix + (k,))
        if isinstance(v, dict):
            out |= _paths(v, prefix + (k,))
    return out


def _gpu_overrides() -> dict:
    merged: dict = {}
    for f in sorted((CONF / "gpu").glob("parameters*.yml")):
        data = yaml.safe_load(f.read_text()) or {}
        assert not set(data) & set(merged), f"{f.name} repeats a top-level key"
        merged.update(data)
    return merged


def _config_fields(path: tuple) -> set[str]:
    """Fields of the dataclass a `train` block becomes (GRPOConfig for RL stages, SFTConfig for SFT)."""
    from dataclasses import fields

    from nemotron_cascade.rl.trainer import GRPOConfig
    from nemotron_cascade.training.sft import SFTConfig

    cls = SFTConfig if path[0] == "sft" else GRPOConfig
    return {f.name for f in fields(cls)} | {"launch"} | ({"block_size"} if cls is SFTConfig else set())


def test_gpu_parameters_load_and_override_base():
    base = _loader("base")["parameters"]
    gpu = _loader("gpu")["parameters"]
    assert gpu["base_model"]["source"] == "pretrained"
    assert gpu["base_model"]["name_or_path"] == "Qwen/Qwen3-0.6B-Base"
    assert gpu["base_model"]["tiny"] == base["base_model"]["tiny"]          # soft merge keeps the rest
    assert gpu["sft"]["stage1"]["train"]["block_size"] == 16384
    assert gpu["sft"]["stage2"]["train"]["block_size"] == 32768
    assert gpu["sft"]["stage2"]["train"]["max_steps"] == base["sft"]["stage2"]["train"]["max_steps"]
    math = gpu["math_rl"]["train"]
    assert [t for _, t in math["length_schedule"]] == [24576, 32768, 40960]
    assert (math["prompts_per_step"], math["group_size"], math["lr"]) == (128, 8, 2e-6)
    assert gpu["math_rl_control"]["train"]["shuffle_rewards"] is True
    assert gpu["math_rl_control"]["train"]["length_schedule"] == math["length_schedule"]
    assert gpu["code_rl"]["train"]["temperature"] == 1.0
    assert gpu["swe_rl"]["train"]["context_schedule"][-1][1] == 24576
    assert gpu["evaluation"]["thinking"] == base["evaluation"]["thinking"]
    assert gpu["math_rl"]["train"]["rollout_engine"] == "vllm"
    assert gpu["math_rl_control"]["train"]["vllm"] == gpu["math_rl"]["train"]["vllm"]


def _null_keys(d: dict, prefix: tuple = ()) -> set[tuple]:
    """Paths whose base value is null: a profile may give them a whole mapping (e.g. rope_scaling)."""
    out = set()
    for k, v in d.items():
        if v is None:
            out.add(prefix + (k,))
        elif isinstance(v, dict):
            out |= _null_keys(v, prefix + (k,))
    return out


def _another_instance(block: str) -> bool:
    """A gpu teacher block ``name: {backend: <kind>, ...}`` whose kind is a block of base, every key
    of it a key of that base block (``openai_plain: {backend: openai, ...}``)."""
    gpu = _gpu_overrides()["teacher"]["backends"].get(block) or {}
    base = _loader("base")["parameters"]["teacher"]["backends"].get(gpu.get("backend"))
    return isinstance(base, dict) and set(gpu) - {"backend"} <= set(base)


def test_every_gpu_override_is_a_base_key():
    base_params = _loader("base")["parameters"]
    base, nulls = _paths(base_params), _null_keys(base_params)
    unknown = []
    for path in _paths(_gpu_overrides()):
        if path[0] in GPU_ONLY or path in base or any(path[:i] in nulls for i in range(1, len(path))):
            continue
        if path[:2] == ("teacher", "backends") and len(path) > 2 and _another_instance(path[2]):
            continue  # a block of its own name that is another instance of a base block's kind
        # a field base leaves at the config dataclass's default (e.g. betas of GRPOConfig)
        # (and what such a field holds, e.g. the keyword arguments under GRPOConfig.vllm)
        field = next((path[:i + 1] for i in range(2, len(path)) if path[i - 1] == "train"), None)
        if field and field[:-1] in base and field[-1] in _config_fields(field):
            continue
        unknown.append(".".join(map(str, path)))
    assert not unknown, f"gpu overrides keys that base does not have (typos?): {sorted(unknown)}"


@pytest.mark.parametrize("stage", ["rlhf", "if_rl", "math_rl", "math_rl_control", "code_rl", "swe_rl"])
def test_gpu_rl_stages_build_their_config(stage):
    from nemotron_cascade.config import config_from_params
    from nemotron_cascade.rl.trainer import GRPOConfig

    cfg = config_from_params(GRPOConfig, dict(_loader("gpu")["parameters"][stage]["train"]))
    assert cfg.prompts_per_step == 128 and cfg.lr == 2e-6 and cfg.betas == (0.9, 0.95)
    assert cfg.rollout_engine == "vllm" and cfg.vllm["gpu_memory_utilization"] == 0.5


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_gpu_sft_stages_build_their_config(stage):
    from nemotron_cascade.config import config_from_params
    from nemotron_cascade.training.sft import SFTConfig

    train = dict(_loader("gpu")["parameters"]["sft"][stage]["train"])
    train.pop("block_size")
    assert config_from_params(SFTConfig, train).lr == 2e-5


def test_the_gpu_profile_generates_no_embedded_world():
    """Parameters merge softly over base: `world.sizes: {}` would keep base's world, every size is zeroed."""
    from nemotron_cascade.data.world import DOMAINS

    sizes = _loader("gpu")["parameters"]["world"]["sizes"]
    assert set(sizes) == set(DOMAINS) and all(n == 0 for d in sizes.values() for n in d.values())
