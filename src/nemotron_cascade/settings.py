"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from nemotron_cascade.hooks import DataLineageHook, StageTrackingHook, UpstreamCheckHook
from nemotron_cascade.journal import ResumeHook

# pluggy calls the last registered first: the upstream check runs before tracking opens a run
HOOKS = (ResumeHook(), StageTrackingHook(), DataLineageHook(), UpstreamCheckHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "base",
    # deep-merge parameters of an environment (test, gpu) over base instead of replacing whole keys
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
}
