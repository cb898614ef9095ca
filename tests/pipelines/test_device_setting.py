"""The one ``device`` setting (conf/base/globals.yml): every block that runs a model reads it, a
profile's globals or ``kedro run --params device=...`` change it everywhere, the typed configs
check it, and it stays out of the resume fingerprints."""

import shutil
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "conf"
RL = ("rlhf", "if_rl", "math_rl", "math_rl_control", "code_rl", "swe_rl")


def _params(conf: Path, env: str, runtime: dict | None = None) -> dict:
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    return OmegaConfigLoader(conf_source=str(conf), env=env, runtime_params=runtime,
                             **settings.CONFIG_LOADER_ARGS)["parameters"]


def _devices(params: dict) -> dict:
    blocks = {"base_model": params["base_model"], "sft.stage1": params["sft"]["stage1"],
              "sft.stage2": params["sft"]["stage2"], "reward_model": params["reward_model"],
              "evaluation": params["evaluation"], **{s: params[s] for s in RL}}
    return {name: block.get("device") for name, block in blocks.items()}


@pytest.mark.parametrize("env", ["base", "test", "gpu"])
def test_every_block_reads_the_one_setting(env):
    assert set(_devices(_params(CONF, env)).values()) == {"auto"}  # auto picks the GPU in the gpu profile


def test_a_runtime_param_moves_every_stage():
    """``kedro run --params device=cuda:1`` (Kedro hands it to the loader as a runtime parameter)."""
    assert set(_devices(_params(CONF, "gpu", {"device": "cuda:1"})).values()) == {"cuda:1"}


def test_a_profiles_globals_move_every_stage(tmp_path):
    shutil.copytree(CONF, tmp_path / "conf")
    (tmp_path / "conf/gpu/globals.yml").write_text("device: cpu\n")
    assert set(_devices(_params(tmp_path / "conf", "gpu")).values()) == {"cpu"}
    assert set(_devices(_params(tmp_path / "conf", "base")).values()) == {"auto"}


@pytest.mark.parametrize("build, match", [
    (lambda: _sft_stage(device="gpu0"), "sft.<stage>.device must be"),
    (lambda: _rl_stage(device="cuda:a"), "<rl stage>.device must be"),
    (lambda: _eval(device="tpu"), "evaluation.device must be"),
])
def test_a_bad_device_fails_at_config_time_naming_the_block(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def _sft_stage(**kw):
    from nemotron_cascade.pipelines.sft.config import SFTStageConfig

    return SFTStageConfig(train={"block_size": 64}, **kw)


def _rl_stage(**kw):
    from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig

    return RLStageConfig(domains=["math"], reward="math", train={"length_schedule": [[0, 8]]}, **kw)


def _eval(**kw):
    from nemotron_cascade.evaluation.benchmarks import EvalConfig

    return EvalConfig(**kw)


def test_the_device_is_not_part_of_a_resume_fingerprint():
    """Moving a stage to another GPU resumes its state: the fingerprint hashes the train block only."""
    from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig

    a, b = _sft_stage(device="cpu"), _sft_stage(device="cuda:1")
    assert a.train_params == b.train_params
    rl = [RLStageConfig(domains=["math"], reward="math", train={"length_schedule": [[0, 8]]}, device=d)
          for d in ("auto", "cpu")]
    assert rl[0].train_params == rl[1].train_params
