"""A versioned Kedro dataset for ``save_pretrained`` checkpoints (model + tokenizer + lineage).

No kedro-datasets class saves a ``save_pretrained`` directory with versioning, so this one does:
each save goes to ``<filepath>/<version>/<name>/``, written first to a temporary sibling directory
and renamed into place, so a crash mid-save never leaves a half checkpoint that a later load would
pick up (versions are found by the exact final name). ``--load-versions=<dataset>:<version>`` pins a
version; otherwise the latest complete one loads.

Beside the weights, ``lineage.json`` records where the checkpoint came from: the stage, the version
and path of the checkpoint it was trained from, the data it saw and the MLflow run that made it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"


@dataclass
class Checkpoint:
    """A policy (or reward model) in memory: the model, its tokenizer and its lineage record."""

    model: Any
    tokenizer: Any
    lineage: dict = field(default_factory=dict)


class CheckpointDataset(AbstractVersionedDataset[Checkpoint, Checkpoint]):
    """``save_pretrained`` directory of a model and its tokenizer, optionally versioned.

    Example catalog entry::

        "{stage}.policy":
          type: nemotron_cascade.datasets.CheckpointDataset
          filepath: data/06_models/{stage}
          versioned: true
    """

    def __init__(self, filepath: str, version: Version | None = None, model_class: str = "auto-causal-lm",
                 dtype: str = "float32", metadata: dict | None = None):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=os.path.isdir)
        self._model_class, self._dtype, self.metadata = model_class, dtype, metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version, "model_class": self._model_class}

    def load(self) -> Checkpoint:
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        from nemotron_cascade.models import load_tokenizer

        path = Path(self._get_load_path())
        if not path.is_dir():
            raise DatasetError(f"no checkpoint at {path}")
        cls = AutoModelForSequenceClassification if self._model_class == "auto-sequence-classification" \
            else AutoModelForCausalLM
        model = cls.from_pretrained(path, dtype=getattr(torch, self._dtype))
        model.eval()
        lineage_file = path / LINEAGE_FILE
        lineage = json.loads(lineage_file.read_text()) if lineage_file.exists() else {}
        lineage.update(path=str(path), version=self.resolve_load_version())
        return Checkpoint(model=model, tokenizer=load_tokenizer(str(path)), lineage=lineage)

    def save(self, data: Checkpoint) -> None:
        path = Path(self._get_save_path())
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            data.model.save_pretrained(tmp)
            data.tokenizer.save_pretrained(tmp)
            lineage = {**data.lineage, "version": self.resolve_save_version(), "path": str(path)}
            (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, default=str))
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        data.lineage = lineage
        log.info("saved checkpoint %s", path)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_dir()
        except DatasetError:
            return False
