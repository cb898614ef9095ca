"""Token lengths checked against the model's context before any node runs (nemotron_cascade.lengths).

Cases run on the Base-format checkpoint of tests/real_model.py (max_position_embeddings 32,768 as
Qwen3-0.6B-Base's config.json) and on the profiles' own parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from real_model import save_qwen3_base  # tests/

from nemotron_cascade import lengths

CONF = Path(__file__).resolve().parents[1] / "conf"
YARN = {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32768}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return str(save_qwen3_base(tmp_path_factory.mktemp("qwen3-base")))


def _params(env: str) -> dict:
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    return OmegaConfigLoader(conf_source=str(CONF), env=env, **settings.CONFIG_LOADER_ARGS)["parameters"]


def _pretrained(path: str, rope_scaling=None, **params) -> dict:
    return {"base_model": {"source": "pretrained", "name_or_path": path, "rope_scaling": rope_scaling}, **params}


CASES = [  # (params besides base_model, rope_scaling, the words of the error or None, why)
    ({"math_rl": {"train": {"length_schedule": [[0, 24576], [20, 40960]]}}}, None,
     "params math_rl.train.length_schedule: 40960 tokens exceed the 32768-token context",
     "the paper's 40K math schedule is past Qwen3-0.6B-Base's 32K positions"),
    ({"math_rl": {"train": {"length_schedule": [[0, 24576], [20, 40960]]}}}, YARN, None,
     "YaRN factor 2 extends 32K to 64K, as vLLM derives max_model_len"),
    ({"swe_rl": {"train": {"length_schedule": [[0, 16384]], "context_schedule": [[0, 16384], [10, 24576]]}}}, None,
     "params swe_rl.train.length_schedule + context_schedule: 40960 tokens",
     "the prompt budget counts: 24K context plus a 16K patch"),
    ({"sft": {"stage2": {"train": {"block_size": 65536}}}}, YARN, None, "a 64K block fits the extended context"),
    ({"sft": {"stage2": {"train": {"block_size": 65537}}}}, YARN, "params sft.stage2.train.block_size: 65537",
     "one token past the extended context"),
    ({"evaluation": {"max_new_tokens": 32768}}, None,
     "params evaluation.max_new_tokens: 32768 new tokens leave no room",
     "the prompt needs at least one position"),
    ({"code_rl": {"train": {"length_schedule": [[0, 45056]], "vllm": {"max_model_len": 32768}}}}, YARN,
     "params code_rl.train.vllm.max_model_len: 32768 must hold the stage's 45056 tokens",
     "vLLM would refuse or truncate sequences longer than its max_model_len"),
    ({"evaluation": {"max_new_tokens": 32768, "vllm": {"max_model_len": 32768}}}, YARN,
     "params evaluation.vllm.max_model_len: 32768 must exceed evaluation.max_new_tokens (32768)",
     "the evaluation engine must hold the budget plus a prompt"),
    ({"code_rl": {"train": {"length_schedule": [[0, 45056]], "vllm": {"max_model_len": 131072}}}}, YARN,
     "max_model_len: 131072 must hold the stage's 45056 tokens and not exceed the 65536-token context",
     "an engine length past the model's context"),
]


@pytest.mark.parametrize("params, rope, words, why", CASES)
def test_lengths_against_the_context(base_dir, params, rope, words, why):
    full = _pretrained(base_dir, rope, **params)
    if words is None:
        lengths.check_lengths(full, set(params))
        return
    with pytest.raises(lengths.ContextLengthError) as err:
        lengths.check_lengths(full, set(params))
    assert words in str(err.value), why
    assert "base_model.rope_scaling" in str(err.value)  # the message says how to fix it


def test_only_the_keys_the_run_reads_are_checked(base_dir):
    too_long = {"math_rl": {"train": {"length_schedule": [[0, 40960]]}}}
    lengths.check_lengths(_pretrained(base_dir, None, **too_long), {"world", "curation"})  # data curation: fine


@pytest.mark.parametrize("env", ["base", "test"])
def test_the_embedded_profiles_fit_the_tiny_model(env):
    params = _params(env)
    lengths.check_lengths(params, set(params))


def test_the_gpu_profile_fits_qwen3_base_with_its_yarn_scaling(base_dir):
    params = _params("gpu")
    assert params["base_model"]["rope_scaling"]["factor"] == 2.0
    params["base_model"]["name_or_path"] = base_dir  # the real checkpoint's config, offline
    lengths.check_lengths(params, set(params))
    params["base_model"]["rope_scaling"] = None      # without it: the error, naming every stage too long
    with pytest.raises(lengths.ContextLengthError) as err:
        lengths.check_lengths(params, set(params))
    for key in ("math_rl.train.length_schedule", "code_rl.train.length_schedule", "evaluation.max_new_tokens"):
        assert key in str(err.value)


def test_an_unreadable_model_config_skips_the_check_with_a_warning(caplog):
    lengths.check_lengths(_pretrained("/nonexistent/model", None, evaluation={"max_new_tokens": 10**9}),
                          {"evaluation"})
    assert "lengths not checked" in caplog.text


@pytest.mark.slow
def test_kedro_run_stops_before_any_node_on_a_length_past_the_context(tmp_path, make_project):
    project = make_project(tmp_path / "project")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "NEMOTRON_CASCADE_NO_MLFLOW": "1", "COLUMNS": "2000"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test",
                           "--params", "sft.stage2.train.block_size=4096"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and "params sft.stage2.train.block_size: 4096 tokens exceed the" in out, out[-2000:]
    assert "Completed 1 out of" not in out
    assert not [p for p in (project / "data").rglob("*") if p.is_file()]  # nothing written
