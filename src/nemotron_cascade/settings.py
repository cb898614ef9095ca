"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from nemotron_cascade.journal import ResumeHook
from nemotron_cascade.lengths import LengthCheckHook
from nemotron_cascade.tracking.data_lineage import DataLineageHook
from nemotron_cascade.tracking.runs import StageTrackingHook
from nemotron_cascade.tracking.upstream import UpstreamCheckHook

# The resume hook owns the run journal; the tracking hook keeps its MLflow run ids there (so a
# resumed run continues the killed run's runs) and the ResumableRunner finds it through the hook manager.
RESUME = ResumeHook()
# pluggy calls the last registered first: the upstream check runs before tracking opens a run
HOOKS = (
    RESUME,
    StageTrackingHook(run_store=RESUME),  # the matrix (table, Markdown, heatmap) goes on the parent run
    DataLineageHook(),
    UpstreamCheckHook(),
    LengthCheckHook(),  # first of all: a length past the model's context stops the run before anything opens
)

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
