"""Wrong parameter types fail before any node runs, naming the block and the key (issue: faults, 11).

Before the typed configs checked types, ``--params math_rl.train.lr=abc`` or ``group_size=2.5``
loaded the policy and then failed deep inside torch, naming no key. Each case: the value, and the
words the user now sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_cascade import config
from nemotron_cascade.rl.config import GRPOConfig
from nemotron_cascade.training.reward_model import RMConfig
from nemotron_cascade.training.sft import SFTConfig

CASES = [  # (config class, key, bad value, what the message says, why the value is wrong)
    (GRPOConfig, "lr", "abc", "lr must be float, got 'abc' (str)", "a string where a number belongs"),
    (GRPOConfig, "group_size", 2.5, "group_size must be int, got 2.5 (float)", "a fractional count"),
    (GRPOConfig, "group_size", True, "group_size must be int, got True (bool)", "YAML true is not a count"),
    (GRPOConfig, "dynamic_filter", "yes", "dynamic_filter must be bool", "a quoted 'yes' is a string"),
    (GRPOConfig, "length_schedule", 128, "length_schedule must be tuple", "a number where a schedule list belongs"),
    (GRPOConfig, "vllm", "fast", "vllm must be dict | NoneType", "engine options are a mapping"),
    (SFTConfig, "max_steps", "400", "max_steps must be int, got '400' (str)", "a quoted number"),
    (SFTConfig, "deepspeed", 2, "deepspeed must be dict | str | NoneType", "a ZeRO stage is named, e.g. zero2"),
    (RMConfig, "center_coef", None, "center_coef must be float, got None", "null where a number belongs"),
]


@pytest.mark.parametrize("cls, key, value, message, why", CASES)
def test_a_value_of_the_wrong_type_names_block_key_and_type(cls, key, value, message, why):
    with pytest.raises(ValueError) as err:
        config.config_from_params(cls, {key: value}, "params:math_rl.train")
    assert str(err.value).startswith("params:math_rl.train: ") and message in str(err.value), why


@pytest.mark.parametrize("cls, params", [
    (GRPOConfig, {"lr": 1, "betas": [0.9, 0.95], "length_schedule": [[0, 8]], "vllm": {"dtype": "bfloat16"}}),
    (SFTConfig, {"lr": 2e-3, "deepspeed": "zero2"}),
    (SFTConfig, {"deepspeed": {"zero_optimization": {"stage": 2}}}),
    (RMConfig, {"warmup_steps": 0, "deepspeed": None}),
])
def test_values_of_the_right_type_pass_unchanged(cls, params):
    cfg = config.config_from_params(cls, params)
    assert all(getattr(cfg, k) == config.to_tuples(v) for k, v in params.items())


@pytest.mark.slow
@pytest.mark.parametrize("override, words", [
    ("math_rl.train.lr=abc", "lr must be float, got 'abc'"),
    ("math_rl.train.group_size=2.5", "group_size must be int, got 2.5"),
    ("math_rl.max_prompts=many", "max_prompts must be int | NoneType, got 'many'"),
])
def test_kedro_run_stops_before_any_node_on_a_wrong_type(tmp_path, make_project, override, words):
    project = make_project(tmp_path / "project")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "NEMOTRON_CASCADE_NO_MLFLOW": "1", "COLUMNS": "2000"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test", "--params", override],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and words in out, out[-2000:]
    assert "Completed 1 out of" not in out
    assert not [p for p in (project / "data").rglob("*") if p.is_file()]  # nothing written
