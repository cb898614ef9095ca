"""Typed stage configs and wiring from parameters: Kedro validates every stage's block before any
node runs, the registry wires stages from conf/base, and the resolved parameters are the ones the
shipped matrix was made with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "conf"
RL = ("rlhf", "if_rl", "math_rl", "math_rl_control", "code_rl", "swe_rl")


def _params(env: str) -> dict:
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    return OmegaConfigLoader(conf_source=str(CONF), env=env, **settings.CONFIG_LOADER_ARGS)["parameters"]


@pytest.fixture(scope="module")
def pipes():
    from nemotron_cascade.pipeline_registry import register_pipelines

    return register_pipelines()


def _validate(pipes, params: dict) -> dict:
    from kedro.validation.parameter_validator import ParameterValidator

    return ParameterValidator(dict(pipes)).validate_raw_params(params)


@pytest.mark.parametrize("env", ["base", "test", "gpu"])
def test_every_stage_block_becomes_its_typed_config_in_every_profile(pipes, env):
    from nemotron_cascade.evaluation.benchmarks import EvalConfig
    from nemotron_cascade.pipelines.reward_model.config import RMStageConfig
    from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig
    from nemotron_cascade.pipelines.sft.config import BaseModelConfig, SFTStageConfig
    from nemotron_cascade.rl.trainer import GRPOConfig

    params = _validate(pipes, _params(env))
    assert isinstance(params["base_model"], BaseModelConfig) and isinstance(params["evaluation"], EvalConfig)
    assert all(isinstance(params["sft"][s], SFTStageConfig) for s in ("stage1", "stage2"))
    assert isinstance(params["reward_model"], RMStageConfig)
    for stage in RL:
        assert isinstance(params[stage], RLStageConfig) and isinstance(params[stage].train, GRPOConfig), stage
        assert params[stage].launch.world_size == 1  # no profile launches yet
    assert params["swe_rl"].localisation.top_k == 2


def test_the_training_nodes_name_their_config_type(pipes):
    """What Kedro reads to validate: each training node's ``params:`` input is typed (a bound
    stage function keeps its hints), so the check covers every stage of the cascade."""
    from kedro.validation.type_extractor import TypeExtractor

    types = TypeExtractor({"cascade": pipes["cascade"]}).extract_types_from_pipelines()
    names = {k: getattr(v, "__name__", str(v)) for k, v in types.items()}
    assert names == {"base_model": "BaseModelConfig", "sft.stage1": "SFTStageConfig", "sft.stage2": "SFTStageConfig",
                     "reward_model": "RMStageConfig", "evaluation": "EvalConfig", "evaluation_harness": "HarnessConfig",
                     **{s: "RLStageConfig" for s in RL if s != "math_rl_control"}}


@pytest.mark.parametrize("path, key, match", [
    (("swe_rl", "train"), "lrr", r"Parameter 'swe_rl'.*train: unknown key\(s\) \['lrr'\]"),  # the case
    (("swe_rl",), "localise", r"Parameter 'swe_rl'.*localise"),                     # a stage key
    (("swe_rl", "localisation"), "top", r"localisation: unknown key\(s\) \['top'\]"),
    (("swe_rl", "train", "launch"), "wolrd_size", r"wolrd_size"),
    (("sft", "stage2", "train"), "max_step", r"Parameter 'sft.stage2'.*max_step"),
    (("base_model", "pretrain"), "bloc_size", r"Parameter 'base_model'.*pretrain block.*bloc_size"),
    (("base_model", "tiny"), "hidden", r"Parameter 'base_model'.*tiny.*hidden"),
    (("reward_model", "train"), "epoch", r"Parameter 'reward_model'.*epoch"),
    (("evaluation",), "max_new_token", r"Parameter 'evaluation'.*max_new_token"),
])
def test_a_typo_in_any_stage_block_fails_validation_naming_it(pipes, path, key, match):
    from kedro.validation.exceptions import ParameterValidationError

    params = _params("base")
    block = params
    for p in path:
        block = block.setdefault(p, {}) if p == "launch" else block[p]
    block[key] = 1
    with pytest.raises(ParameterValidationError, match=match):
        _validate(pipes, params)


def test_a_typo_in_the_last_stage_stops_kedro_run_before_any_node(tmp_path, make_project):
    """``kedro run`` validates the parameters of every stage it will run before its first node:
    a typo in ``swe_rl.train`` stops the cascade at once, not after hours of earlier stages."""
    project = make_project(tmp_path / "project")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "NEMOTRON_CASCADE_NO_MLFLOW": "1", "COLUMNS": "2000"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test",
                           "--params", "swe_rl.train.lrr=0.1"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "ParameterValidationError" in out and "swe_rl" in out and "lrr" in out
    assert "Completed node" not in out and "Completed 1 out of" not in out
    assert not [p for p in (project / "data").rglob("*") if p.is_file()]  # nothing written


# ------------------------------------------------------------------------------------------- wiring
def test_the_wiring_comes_from_the_base_parameters(pipes):
    from nemotron_cascade.pipeline_registry import stage_wiring

    wiring = stage_wiring(CONF)
    assert {s for s, w in wiring.items() if w["reward_model"]} == {"rlhf", "if_rl"}
    assert {s for s, w in wiring.items() if w["localise"]} == {"swe_rl"}
    for stage in RL:
        nodes = {n.name for n in pipes[stage].nodes}
        assert ("reward_model.model" in pipes[stage].inputs()) == wiring[stage]["reward_model"], stage
        assert (f"{stage}.localise_prompts" in nodes) == wiring[stage]["localise"], stage
        assert {f"{stage}.select_prompts", f"{stage}.train_grpo", f"{stage}.plot_curves"} <= nodes
        assert f"{stage}.curves" in pipes[stage].all_outputs()


def test_a_stage_block_alone_rewires_the_stage(tmp_path, monkeypatch):
    """Wiring is a parameter: give math_rl the reward model and localisation in conf/base, and the
    registry wires it so without a line of Python."""
    import shutil

    from nemotron_cascade import pipeline_registry

    shutil.copytree(CONF, tmp_path / "conf")
    rl = tmp_path / "conf/base/parameters_rl.yml"
    head = "math_rl: &math_rl\n  <<: *rl_defaults\n"
    assert head in rl.read_text()
    wired = head + "  reward_model: true\n  localisation: {top_k: 1, max_new_tokens: 8}\n"
    rl.write_text(rl.read_text().replace(head, wired))
    monkeypatch.setattr(pipeline_registry, "conf_dir", lambda: tmp_path / "conf")
    math = pipeline_registry.register_pipelines()["math_rl"]
    assert "reward_model.model" in math.inputs()
    assert "math_rl.localise_prompts" in {n.name for n in math.nodes}


@pytest.mark.parametrize("env", ["test", "gpu"])
def test_profiles_change_sizes_not_wiring(env):
    from nemotron_cascade.pipeline_registry import wiring_of

    assert wiring_of(_params(env)) == wiring_of(_params("base"))


def test_a_profile_that_rewires_a_stage_is_refused_at_the_node():
    from nemotron_cascade.pipelines.rl_stage import nodes
    from nemotron_cascade.pipelines.rl_stage.config import RLStageConfig

    cfg = RLStageConfig(domains=["math"], reward="math", reward_model=True, train={"length_schedule": [[0, 8]]})
    with pytest.raises(ValueError, match="wiring comes from conf/base"):
        nodes.train_rl_stage(None, [], cfg, stage="math_rl", reward_model=None)


# ------------------------------------------------------------------------ resolved parameters kept
# The values the shipped matrix was made with (the resolved parameters before the stages took
# rl_defaults): only `name`/`resume_dir` left the blocks, `reward_model` joined them.
BASE_RLHF_TRAIN = {"max_steps": 12, "prompts_per_step": 8, "group_size": 8, "lr": 5e-5, "temperature": 1.0,
                   "thinking_ratio": 0.5, "length_schedule": [[0, 96]], "overlong_filter": True,
                   "dynamic_filter": False, "readmit_prob": 0.1, "shuffle_rewards": False, "micro_batch_size": 32,
                   "checkpoint_every": 10, "seed": 0, "rollout_engine": "embedded", "logits_chunk_tokens": 8192,
                   "share_prompt_forward": True}


def test_the_resolved_rl_parameters_are_the_shipped_ones():
    base, test, gpu = (_params(env) for env in ("base", "test", "gpu"))
    assert base["rlhf"]["train"] == BASE_RLHF_TRAIN
    assert {k: base["rlhf"][k] for k in ("domains", "reward", "max_prompts", "diagnostics")} == {
        "domains": ["general"], "reward": "reward_model", "max_prompts": None,
        "diagnostics": ["ground_truth_quality", "repetition"]}
    assert base["if_rl"]["train"] == {**BASE_RLHF_TRAIN, "max_steps": 70, "lr": 6e-5, "thinking_ratio": 0.0,
                                      "length_schedule": [[0, 128]], "dynamic_filter": True}
    math = {**BASE_RLHF_TRAIN, "max_steps": 25, "thinking_ratio": 1.0, "dynamic_filter": True,
            "length_schedule": [[0, 96], [8, 128], [16, 160]]}
    assert base["math_rl"]["train"] == math and base["math_rl"]["max_prompts"] == 200
    assert base["math_rl_control"]["train"] == {**math, "shuffle_rewards": True}
    assert base["code_rl"]["train"] == {**math, "max_steps": 20, "length_schedule": [[0, 160]],
                                        "overlong_filter": False}
    assert base["swe_rl"]["train"] == {**math, "max_steps": 60, "length_schedule": [[0, 160]],
                                       "context_schedule": [[0, 200]]}
    assert base["swe_rl"]["localisation"] == {"top_k": 2, "max_new_tokens": 128}
    assert [base[s]["diagnostics"] for s in ("if_rl", "math_rl", "code_rl", "swe_rl")] == [["repetition"], [], [], []]
    assert test["math_rl"]["train"] == {**math, "max_steps": 3, "prompts_per_step": 2, "group_size": 4,
                                        "length_schedule": [[0, 24], [2, 32]], "checkpoint_every": 2}
    assert [test[s]["max_prompts"] for s in RL] == [8, 8, 8, 8, None, 8]
    assert test["swe_rl"]["train"]["context_schedule"] == [[0, 100], [1, 400]]
    assert test["swe_rl"]["localisation"] == {"top_k": 2, "max_new_tokens": 32}
    gpu_common = {"rollout_engine": "vllm", "prompts_per_step": 128, "lr": 2e-6, "betas": [0.9, 0.95],
                  "vllm": {"dtype": "bfloat16", "gpu_memory_utilization": 0.5, "sleep_level": 1,
                           "tensor_parallel_size": 1, "max_model_len": 65536}, "logits_chunk_tokens": 1024}
    assert gpu["rlhf"]["train"] == {**BASE_RLHF_TRAIN, **gpu_common, "micro_batch_size": 4,
                                    "length_schedule": [[0, 12288]]}  # the real RLHF length, not base's 96
    assert gpu["swe_rl"]["train"]["group_size"] == 16 and gpu["code_rl"]["train"]["micro_batch_size"] == 1
    assert gpu["math_rl_control"]["train"] == {**gpu["math_rl"]["train"], "shuffle_rewards": True}
    for params in (base, test, gpu):
        for stage in RL:
            assert not {"name", "resume_dir"} & set(params[stage])  # derived from the namespace and the run
        assert not {"name", "resume_dir"} & (set(params["sft"]["stage1"]) | set(params["reward_model"]))


def test_the_resolved_sft_and_reward_model_parameters_are_the_shipped_ones():
    base, test, gpu = (_params(env) for env in ("base", "test", "gpu"))
    assert base["sft"]["stage1"]["train"]["max_steps"] == 280 and base["sft"]["stage2"]["train"]["block_size"] == 384
    assert base["base_model"]["pretrain"]["max_steps"] == 180 and "resume_dir" not in base["base_model"]
    assert base["reward_model"]["train"]["lr"] == 5e-4 and base["reward_model"]["init"] == "policy"
    assert test["sft"]["stage1"]["train"] == {**base["sft"]["stage1"]["train"], "max_steps": 12, "batch_size": 4,
                                              "warmup_steps": 2, "log_every": 4, "checkpoint_every": 6}
    assert gpu["sft"]["stage2"]["train"]["block_size"] == 32768 and "scale_out" not in gpu
