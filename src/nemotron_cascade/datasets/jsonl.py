"""JSON-lines dataset that validates every row on load and writes atomically.

Bad input is named precisely: a line that is not JSON, not an object, or misses/mistypes a field of
its schema raises :class:`DataValidationError` with the file, the 1-based line number and the
field. Saves go to a temporary file in the same directory and are renamed into place, so a crash
never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from nemotron_cascade.data.schemas import validate_row


class DataValidationError(DatasetError):
    """A row of a dataset file is malformed; the message names the file, row and field."""


class JsonlDataset(AbstractVersionedDataset[list, list]):
    """A list of dicts stored one JSON object a line, checked against a named schema.

    Example::

        raw.math:
          type: nemotron_cascade.datasets.JsonlDataset
          filepath: data/01_raw/tasks/math.jsonl
          schema: task.math
    """

    def __init__(self, filepath: str, schema: str | None = None, version: Version | None = None,
                 metadata: dict | None = None, on_error: str = "raise"):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=os.path.isfile)
        if on_error not in ("raise", "quarantine"):
            raise DatasetError(f"{filepath}: on_error must be 'raise' or 'quarantine', got {on_error!r}")
        self._schema, self.metadata, self._on_error = schema, metadata, on_error

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "schema": self._schema, "version": self._version,
                "on_error": self._on_error}

    def load(self) -> list[dict]:
        path = Path(self._get_load_path())
        if not path.is_file():
            raise DataValidationError(f"{path}: file not found")
        rows = []
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    rows.append(self._parse(path, lineno, raw))
                except DataValidationError as exc:
                    if self._on_error == "raise":
                        raise
                    # quarantine mode: the bad line comes back as an error record for the curation
                    # pipeline to quarantine (nemotron_cascade.data.curation.quarantine)
                    rows.append({"_error": str(exc).split(": ", 2)[-1], "_file": str(path), "_row": lineno,
                                 "_text": raw.decode("utf-8", "replace")[:2000]})
        return [r for r in rows if r is not None]

    def _parse(self, path: Path, lineno: int, raw: bytes) -> dict | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataValidationError(f"{path}: row {lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            return None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataValidationError(f"{path}: row {lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataValidationError(f"{path}: row {lineno}: expected a JSON object, got {type(row).__name__}")
        if self._schema:
            problem = validate_row(self._schema, row)
            if problem:
                raise DataValidationError(f"{path}: row {lineno}: {problem}")
        return row

    def save(self, data: list[dict]) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for i, row in enumerate(data):
                    if self._schema:
                        problem = validate_row(self._schema, row)
                        if problem:
                            raise DataValidationError(f"{path}: row {i + 1} (to be written): {problem}")
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except DatasetError:
            return False
