"""Load-only Kedro datasets over the paper's public HF sources (``nemotron_cascade.data.sources``).

``HFSourceDataset`` loads each named source, maps its rows onto our task schema and returns the
concatenated tasks; rejected rows are never dropped silently: they are counted in the log, kept on
``last_rejects``, written to ``quarantine_filepath`` (JSON lines) when one is given, and a source
whose reject share exceeds ``max_reject_share`` fails the load (a renamed upstream column rejects
every row: better to stop than to train on nothing). ``HFBenchmarkTextsDataset`` returns the
decontamination texts of the named benchmarks.

Example (``conf/gpu/catalog.yml``)::

    raw.code:
      type: nemotron_cascade.datasets.hf_source.HFSourceDataset
      sources:
        - taco
        - {name: apps, limit: 2000}
        - {name: livecodebench}          # a benchmark: its rows are the ``bench`` split
      rl_share: 0.2
      quarantine_filepath: data/01_raw/quarantine/code.jsonl

A source entry is a name from ``SOURCES`` / ``BENCHMARKS`` or a mapping with ``name`` and any of
``split`` (the HF split), ``limit`` (raw rows read), ``task_split``, ``rl_share``, ``builder`` and
``data_files`` (e.g. ``json`` and a local file) and ``load_args`` (passed to ``load_dataset``).

``hub_root`` (both datasets; default None: the Hub) reads every source from a local directory laid
out as the Hub is, ``<hub_root>/<org>/<name>/`` holding the repository's files and its README's
``configs``: the same ``load_dataset`` call with the directory in place of the hub id, and
``hf://datasets/<org>/<name>/...`` data files read under ``hub_root`` (an offline mirror, or the tests'
copies from ``tests/hub_mirror.py``). A source whose directory, or one of whose ``hf://`` data files,
is missing there fails the load, naming the path.
``limit`` means the same with or without it: at most that many raw rows, streamed from the files.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from nemotron_cascade.data import sources as hf_sources
from nemotron_cascade.data.sources.registry import HUB_PREFIX

logger = logging.getLogger(__name__)

_ENTRY_KEYS = {"name", "split", "limit", "task_split", "rl_share", "builder", "data_files", "load_args"}


def _patterns(files: Any) -> list[str]:
    """The file patterns of a ``data_files`` value (a string, a list, or a split -> files mapping)."""
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return [p for v in files.values() for p in _patterns(v)]
    return [p for f in files for p in _patterns(f)]


def _mirror_args(entry: dict, hub_root: str | None) -> dict:
    """``{"hub_root": ...}`` for ``load_source`` when reading from a local Hub copy, else ``{}``. The copy
    must hold the source's repository and, for a source read from ``hf://`` files, a file matching each
    pattern; an entry with its own ``data_files`` reads those as given."""
    if not hub_root:
        return {}
    if "data_files" not in entry:
        spec = hf_sources.get_spec(entry["name"])
        repo = Path(hub_root) / spec.hf_path
        if not repo.is_dir():
            raise DatasetError(f"source {entry['name']!r}: no local copy of its repository at {repo} "
                               f"(hub_root={hub_root!r}); copy the Hub repository there or set hub_root: null")
        for pattern in _patterns(spec.data_files or []):
            local = Path(hub_root) / pattern.removeprefix(HUB_PREFIX)
            if pattern.startswith(HUB_PREFIX) and not glob.glob(str(local)):
                raise DatasetError(f"source {entry['name']!r}: no file matches {local} in the local copy of "
                                   f"{pattern} (hub_root={hub_root!r})")
    return {"hub_root": str(hub_root)}


def _load_args(entry: dict, dataset_args: dict, hub_root: str | None) -> dict:
    """The keyword arguments one entry is loaded with: the dataset's ``load_args``, the entry's own,
    the local Hub copy's, and the entry's ``builder`` / ``data_files``."""
    args = {**dataset_args, **entry.get("load_args", {}), **_mirror_args(entry, hub_root)}
    args.update({key: entry[key] for key in ("builder", "data_files") if key in entry})
    return args


def _entry(source: str | dict) -> dict:
    entry = {"name": source} if isinstance(source, str) else dict(source)
    unknown = set(entry) - _ENTRY_KEYS
    if "name" not in entry or unknown:
        raise DatasetError(f"source entry {source!r}: needs 'name'; allowed keys {sorted(_ENTRY_KEYS)}")
    hf_sources.get_spec(entry["name"])  # fail at construction on an unknown name
    return entry


class HFSourceDataset(AbstractDataset[None, list]):
    """Tasks of one or more HF sources, mapped and concatenated (load-only)."""

    def __init__(self, sources: list[str | dict], limit: int | None = None, rl_share: float = 0.0,
                 quarantine_filepath: str | None = None, max_reject_share: float | None = None,
                 load_args: dict | None = None, hub_root: str | None = None, metadata: dict | None = None):
        if not sources:
            raise DatasetError("HFSourceDataset needs at least one source")
        self._sources = [_entry(s) for s in sources]
        self._limit, self._rl_share = limit, rl_share
        self._quarantine = quarantine_filepath
        self._max_reject_share = max_reject_share
        self._load_args = dict(load_args or {})
        self._hub_root = hub_root
        self.metadata = metadata
        self.last_rejects: list[dict] = []

    def _describe(self) -> dict[str, Any]:
        return {"sources": [e["name"] for e in self._sources], "limit": self._limit,
                "rl_share": self._rl_share, "quarantine_filepath": self._quarantine, "hub_root": self._hub_root}

    def _load_one(self, entry: dict) -> tuple[list[dict], list[dict]]:
        load_args = _load_args(entry, self._load_args, self._hub_root)
        return hf_sources.load_source(
            entry["name"], entry.get("split"), entry.get("limit", self._limit),
            task_split=entry.get("task_split"), rl_share=entry.get("rl_share", self._rl_share), **load_args)

    def load(self) -> list[dict]:
        tasks, rejects = [], []
        for entry in self._sources:
            got, lost = self._load_one(entry)
            share = len(lost) / max(1, len(got) + len(lost))
            logger.info("HF source %s: %d tasks, %d rejects (%.1f%%)", entry["name"], len(got), len(lost), 100 * share)
            if self._max_reject_share is not None and share > self._max_reject_share:
                first = lost[0]["reason"] if lost else ""
                raise DatasetError(f"HF source {entry['name']}: {len(lost)} of {len(got) + len(lost)} rows rejected "
                                   f"(> {self._max_reject_share:.0%}); first: {first}")
            tasks += got
            rejects += lost
        self.last_rejects = rejects
        if self._quarantine:
            self._write_quarantine(rejects)
        return tasks

    def _write_quarantine(self, rejects: list[dict]) -> None:
        path = Path(self._quarantine)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for reject in rejects:
                f.write(json.dumps(reject, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)

    def save(self, data: list) -> None:
        raise DatasetError("HFSourceDataset is load-only: in the gpu profile raw tasks come from the HF "
                           "sources, so run the pipeline without the node that generates the embedded world")

    def _exists(self) -> bool:
        return True


class HFBenchmarkTextsDataset(AbstractDataset[None, list]):
    """Decontamination texts (the ``text_fields``) of the named benchmarks, concatenated (load-only)."""

    def __init__(self, benchmarks: list[str | dict], load_args: dict | None = None, hub_root: str | None = None,
                 metadata: dict | None = None):
        self._benchmarks = [_entry(b) for b in benchmarks]
        unknown = [e["name"] for e in self._benchmarks if e["name"] not in hf_sources.BENCHMARKS]
        if unknown:
            raise DatasetError(f"not benchmarks: {unknown}; known: {sorted(hf_sources.BENCHMARKS)}")
        self._load_args = dict(load_args or {})
        self._hub_root = hub_root
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"benchmarks": [e["name"] for e in self._benchmarks], "hub_root": self._hub_root}

    def load(self) -> list[str]:
        texts = []
        for entry in self._benchmarks:
            load_args = _load_args(entry, self._load_args, self._hub_root)
            got = hf_sources.load_benchmark_texts(entry["name"], entry.get("split"), entry.get("limit"), **load_args)
            logger.info("benchmark %s: %d texts", entry["name"], len(got))
            texts += got
        return texts

    def save(self, data: list) -> None:
        raise DatasetError("HFBenchmarkTextsDataset is load-only")

    def _exists(self) -> bool:
        return True
