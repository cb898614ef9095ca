"""A versioned Kedro dataset for ``save_pretrained`` checkpoints (model + tokenizer + lineage).

No kedro-datasets class saves a ``save_pretrained`` directory with versioning, so this one does:
each save goes to ``<filepath>/<version>/<name>/``, written first to a temporary sibling directory
and renamed into place, so a crash mid-save never leaves a half checkpoint that a later load would
pick up (versions are found by the exact final name). A model with a NaN/inf tensor is refused
(``DatasetError``) before anything is written. ``--load-versions=<dataset>:<version>`` pins a
version; otherwise the latest complete one loads, except that a dataset object that saved loads
back its own version (a concurrent run's newer one is not picked up mid-run). Two processes saving
under the same version (the same millisecond) get two versions: see ``_claim_version``.

Beside the weights, ``lineage.json`` records where the checkpoint came from: the stage, the version
and path of the checkpoint it was trained from, the data it saw and the MLflow run that made it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC
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
        from nemotron_cascade.training.faults import NonFiniteError, check_finite_state

        # not _get_save_path(), which refuses a version that exists: _claim_version resolves that
        path = Path(self._get_versioned_path(self.resolve_save_version()) if self._version else self._filepath)
        try:  # a poisoned model is never written: nothing downstream may load it
            check_finite_state(f"checkpoint {path}", data.model)
        except NonFiniteError as e:
            raise DatasetError(str(e)) from e
        path, made_version_dir = self._claim_version(path)  # <filepath>/<version>/ of a versioned save
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            data.model.save_pretrained(tmp)
            data.tokenizer.save_pretrained(tmp)
            lineage = {**data.lineage, "version": self.resolve_save_version(), "path": str(path)}
            (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, default=str))
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if made_version_dir and self._version is not None:  # no empty version directory left behind
                try:
                    path.parent.rmdir()
                except OSError:
                    pass
            raise
        data.lineage = lineage
        if self._version is not None and not self._version.load:
            # read your own write: a later node of this run loads this version, not a newer one that
            # a concurrent run saved meanwhile
            self._version = Version(lineage["version"], self._version.save)
        log.info("saved checkpoint %s", path)

    def _claim_version(self, path: Path) -> tuple[Path, bool]:
        """Create this save's version directory ``<filepath>/<version>/``, for this save alone.

        Versions are millisecond timestamps (a ``kedro run`` saves under its session id), so two
        processes can pick the same one: the second to create the directory takes the next free
        millisecond instead (a version string that is not a timestamp gets ``_1``, ``_2``, ...),
        which sorts after it, rather than failing at the rename or replacing the other's
        checkpoint. Returns the save path and whether the directory is new (a failed save removes
        it); an unversioned save keeps ``path``.
        """
        if self._version is None:
            return path, False
        version, root = path.parent.name, path.parent.parent
        for n in range(1000):
            candidate = _later_version(version, n)
            try:
                (root / candidate).mkdir(parents=True)
            except FileExistsError:
                continue
            if n:
                log.warning("checkpoint version %s of %s is taken (another process saved in the same "
                            "millisecond): saving as %s", version, root, candidate)
                self._version = Version(self._version.load, candidate)
            return root / candidate / path.name, True
        raise DatasetError(f"no free version directory for {path} (tried {version} and 999 after it)")

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_dir()
        except DatasetError:
            return False


def _later_version(version: str, n: int) -> str:
    """``version`` moved ``n`` milliseconds later (Kedro's timestamp format), else ``<version>_<n>``."""
    if not n:
        return version
    from datetime import datetime, timedelta

    from kedro.io.core import VERSION_FORMAT

    try:
        moment = datetime.strptime(version, VERSION_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return f"{version}_{n}"
    stamp = (moment + timedelta(milliseconds=n)).strftime(VERSION_FORMAT)
    return stamp[:-4] + stamp[-1:]  # milliseconds, as kedro.io.core.generate_timestamp
