"""Data curation: tasks → curated prompts → teacher responses → SFT blends."""
from nemotron_cascade.pipelines.data_curation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
