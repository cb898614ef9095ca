"""Custom Kedro datasets."""
from nemotron_cascade.datasets.checkpoint import Checkpoint, CheckpointDataset
from nemotron_cascade.datasets.jsonl import DataValidationError, JsonlDataset

__all__ = ["Checkpoint", "CheckpointDataset", "DataValidationError", "JsonlDataset"]
