"""JSON-lines dataset that validates every row on load and writes atomically.

Bad input is named precisely: a line that is not JSON, not an object, or misses/mistypes a field of
its schema raises :class:`DataValidationError` with the file, the 1-based line number and the
field. So does a line longer than ``max_row_bytes`` (read no further: a runaway row cannot exhaust
memory), nesting too deep for the parser, or a number Python refuses to convert.
Saves go to a temporary file in the same directory and are renamed into place, so a crash
never leaves a half-written file behind; the file keeps the mode a plain ``open`` would give it
(the old file's, else the umask's), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from nemotron_cascade.data.schemas import validate_row

# Longest row a load reads (bytes, without the newline). A 50 MB row loads in ~0.3 s with ~3x its
# size in peak memory; the largest rows of this project (teacher samples, code tasks with their
# tests) are far below. A longer line is an error (raise) or a quarantine record, read no further.
DEFAULT_MAX_ROW_BYTES = 64 * 2**20
_SKIP_CHUNK = 2**20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file (read once, at import: umask is process-wide)


class DataValidationError(DatasetError):
    """A row of a dataset file is malformed; the message names the file, row and field.

    ``reason`` is the message without the file and row (what a quarantine record keeps).
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _row_error(path: Path, lineno: int, reason: str) -> DataValidationError:
    return DataValidationError(f"{path}: row {lineno}: {reason}", reason)


class JsonlDataset(AbstractVersionedDataset[list, list]):
    """A list of dicts stored one JSON object a line, checked against a named schema.

    Example::

        raw.math:
          type: nemotron_cascade.datasets.JsonlDataset
          filepath: data/01_raw/tasks/math.jsonl
          schema: task.math
    """

    def __init__(self, filepath: str, schema: str | None = None, version: Version | None = None,
                 metadata: dict | None = None, on_error: str = "raise", max_row_bytes: int = DEFAULT_MAX_ROW_BYTES):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=os.path.isfile)
        if on_error not in ("raise", "quarantine"):
            raise DatasetError(f"{filepath}: on_error must be 'raise' or 'quarantine', got {on_error!r}")
        if int(max_row_bytes) < 1:
            raise DatasetError(f"{filepath}: max_row_bytes must be >= 1, got {max_row_bytes!r}")
        self._schema, self.metadata, self._on_error = schema, metadata, on_error
        self._max_row_bytes = int(max_row_bytes)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "schema": self._schema, "version": self._version,
                "on_error": self._on_error}

    def load(self) -> list[dict]:
        path = Path(self._get_load_path())
        if not path.is_file():
            raise DataValidationError(f"{path}: file not found")
        rows, limit, lineno = [], self._max_row_bytes, 0
        with open(path, "rb") as f:
            while raw := f.readline(limit + 1):  # never more than the limit in memory
                lineno += 1
                try:
                    if len(raw) > limit and not raw.endswith(b"\n"):  # longer than the limit: skip the rest
                        size = len(raw) + self._skip_line(f)
                        raise _row_error(path, lineno,
                                         f"longer than max_row_bytes={limit} ({size} bytes); raise "
                                         "max_row_bytes in its catalog entry if rows this long are expected")
                    rows.append(self._parse(path, lineno, raw))
                except DataValidationError as exc:
                    if self._on_error == "raise":
                        raise
                    # quarantine mode: the bad line comes back as an error record for the curation
                    # pipeline to quarantine (nemotron_cascade.data.curation.quarantine)
                    rows.append({"_error": exc.reason, "_file": str(path), "_row": lineno,
                                 "_text": raw[:8000].decode("utf-8", "replace").rstrip("\r\n")[:2000]})
        return [r for r in rows if r is not None]

    @staticmethod
    def _skip_line(f) -> int:
        """Read past the rest of an over-long line a chunk at a time; the bytes skipped."""
        skipped = 0
        while True:
            chunk = f.readline(_SKIP_CHUNK)
            skipped += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return skipped

    def _parse(self, path: Path, lineno: int, raw: bytes) -> dict | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _row_error(path, lineno, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            return None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _row_error(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        except ValueError as exc:  # e.g. an integer of more than sys.get_int_max_str_digits() digits
            raise _row_error(path, lineno, f"invalid JSON ({str(exc)[:200]})") from None
        except RecursionError:
            raise _row_error(path, lineno, "invalid JSON (nested too deeply to parse)") from None
        if not isinstance(row, dict):
            raise _row_error(path, lineno, f"expected a JSON object, got {type(row).__name__}")
        if self._schema:
            problem = validate_row(self._schema, row)
            if problem:
                raise _row_error(path, lineno, problem)
        return row

    def save(self, data: list[dict]) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.chmod(fd, path.stat().st_mode & 0o7777 if path.is_file() else _FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for i, row in enumerate(data):
                    if not isinstance(row, dict):
                        raise DataValidationError(f"{path}: row {i + 1} (to be written): expected a dict, "
                                                  f"got {type(row).__name__}")
                    if self._schema:
                        problem = validate_row(self._schema, row)
                        if problem:
                            raise DataValidationError(f"{path}: row {i + 1} (to be written): {problem}")
                    try:
                        line = json.dumps(row, ensure_ascii=False)
                    except (TypeError, ValueError) as exc:  # a set, a tensor, a circular reference...
                        raise DataValidationError(f"{path}: row {i + 1} (to be written): not JSON-serialisable "
                                                  f"({exc})") from None
                    f.write(line + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except DatasetError:
            return False
