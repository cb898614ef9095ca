"""Two-stage SFT: one namespaced template, instantiated as ``sft.stage1`` and ``sft.stage2``."""
from nemotron_cascade.pipelines.sft.pipeline import create_pipeline

__all__ = ["create_pipeline"]
