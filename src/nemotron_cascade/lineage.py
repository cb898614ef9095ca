"""Where a checkpoint came from: the chain of checkpoints back to the curated data it was trained on.

Every checkpoint's ``lineage.json`` (written by :class:`~nemotron_cascade.datasets.CheckpointDataset`)
names the checkpoint it was trained from, the MLflow run that trained it and, added by
:class:`~nemotron_cascade.tracking.data_lineage.DataLineageHook`, the data files its node read (directly or through
in-memory intermediate datasets) with their SHA-256 digests. Following the parents gives the whole
cascade behind a checkpoint, across separate ``kedro run``\\ s::

    python -m nemotron_cascade.lineage code_rl                      # the latest code_rl checkpoint
    python -m nemotron_cascade.lineage 2026-11-28T05.40.58.482Z     # a version, of whichever stage
    python -m nemotron_cascade.lineage data/06_models/code_rl/<version>/code_rl --json

Each data file is checked against its recorded digest: ``changed`` means the file on disk is no
longer the one the checkpoint was trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

from nemotron_cascade.datasets.checkpoint import LINEAGE_FILE

MODELS_DIR = Path("data/06_models")
log = logging.getLogger(__name__)


class LineageError(LookupError):
    """A checkpoint, or one of its ancestors, cannot be found."""


@lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (cached while the file is unchanged)."""
    st = os.stat(path)
    return _file_digest(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def content_digest(data) -> str:
    """SHA-256 of in-memory data (rows, dicts), through its canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _inner_checkpoint(version_dir: Path) -> Path | None:
    """The one checkpoint directory inside ``<stage>/<version>/``, else ``None``: a save that never
    finished leaves only its hidden temporary directory (``.<stage>.tmp-<pid>``), which is not one."""
    try:
        inner = [p for p in version_dir.iterdir()
                 if not p.name.startswith(".") and (p / LINEAGE_FILE).is_file()]
    except OSError:
        return None
    return inner[0] if len(inner) == 1 else None


def find_checkpoint(ref: str, root: Path = Path(".")) -> Path:
    """The checkpoint directory named by ``ref``: a path, a version, or a stage (its latest complete version)."""
    path = Path(ref)
    if (path / LINEAGE_FILE).is_file():
        return path
    if path.is_dir() and _inner_checkpoint(path):  # data/06_models/<stage>/<version>: the one directory inside
        return _inner_checkpoint(path)
    models = root / MODELS_DIR
    stage_dir = models / ref
    if stage_dir.is_dir() and not ref.startswith("_"):
        versions = sorted(v for v in stage_dir.iterdir() if v.is_dir() and not v.name.startswith("."))
        for version in reversed(versions):
            found = _inner_checkpoint(version)
            if found:
                return found
            log.warning("skipping %s: no complete checkpoint in it (a save that did not finish)", version)
        if versions:
            raise LineageError(f"no complete checkpoint under {stage_dir}: every version holds a save that did "
                               "not finish")
    hits = sorted(h for h in models.glob(f"*/{ref}/*/{LINEAGE_FILE}")
                  if not h.parent.name.startswith(".")) if models.is_dir() else []
    if len(hits) == 1:
        return hits[0].parent
    if len(hits) > 1:
        raise LineageError(f"version {ref} names {len(hits)} checkpoints: "
                           + ", ".join(str(h.parent) for h in hits) + "; give the path")
    raise LineageError(f"no checkpoint {ref!r}: not a checkpoint path, a stage under {models} or a version of one")


def _locate(record: dict, root: Path) -> Path:
    """A parent checkpoint from its record: the recorded path, else the same version under ``root``."""
    path = Path(record.get("path") or "")
    if (path / LINEAGE_FILE).is_file():
        return path
    if path.parts and record.get("version"):  # the project moved: <dataset dir>/<version>/<name>
        candidate = root / MODELS_DIR / Path(*path.parts[-3:])
        if (candidate / LINEAGE_FILE).is_file():
            return candidate
    if record.get("version"):
        return find_checkpoint(record["version"], root)
    raise LineageError(f"cannot find the parent checkpoint {record}")


def _check_inputs(inputs: dict, root: Path) -> dict:
    out = {}
    for name, info in inputs.items():
        info = dict(info)
        files = []
        for f in info.get("files", []):
            f = dict(f)
            p = Path(f["path"]) if Path(f["path"]).is_absolute() else root / f["path"]
            f["status"] = ("missing" if not p.is_file()
                           else "unchanged" if file_digest(p) == f["sha256"] else "changed")
            files.append(f)
        info["files"] = files
        out[name] = info
    return out


def shown_path(path: Path, root: Path) -> str:
    """How a checkpoint path is reported, the same way for every record: relative to the project
    ``root`` when inside it (as the data files are), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path(root).resolve()))
    except ValueError:
        return str(resolved)


def chain(ref: str, root: Path = Path(".")) -> list[dict]:
    """The lineage records from the checkpoint ``ref`` back to the first one (no parent), newest first."""
    out, seen = [], set()
    path = find_checkpoint(ref, root)
    while True:
        record = json.loads((path / LINEAGE_FILE).read_text())
        record["path"] = shown_path(path, root)
        record["inputs"] = _check_inputs(record.get("inputs", {}), root)
        if record.get("reward_model"):
            try:
                rm_path = _locate(record["reward_model"], root)
                rm = json.loads((rm_path / LINEAGE_FILE).read_text())
                record["reward_model"] = {**record["reward_model"], "path": shown_path(rm_path, root),
                                          "inputs": _check_inputs(rm.get("inputs", {}), root),
                                          "mlflow_run_id": rm.get("mlflow_run_id"),
                                          "parent": rm.get("parent")}
            except LineageError as exc:
                record["reward_model"]["error"] = str(exc)
        out.append(record)
        parent = record.get("parent")
        if not parent or not (parent.get("path") or parent.get("version")):
            return out
        if str(path) in seen:
            raise LineageError(f"lineage loops at {path}")
        seen.add(str(path))
        path = _locate(parent, root)


def _describe_inputs(inputs: dict, indent: str) -> list[str]:
    lines = []
    for name, info in sorted(inputs.items()):
        rows = f"{info['rows']} rows, " if info.get("rows") is not None else ""
        lines.append(f"{indent}data {name} ({rows}sha256 {info.get('sha256', '?')[:12]})")
        for f in info.get("files", []):
            lines.append(f"{indent}  <- {f['path']} (sha256 {f['sha256'][:12]}, {f['status']})")
    return lines


def format_chain(records: list[dict]) -> str:
    """The chain as indented text, newest checkpoint first."""
    lines = []
    for i, r in enumerate(records):
        head = "" if i == 0 else "^ trained from "
        extra = f", reward {r['reward']}" if r.get("reward") else ""
        lines.append(f"{head}{r.get('stage', '?')} {r.get('version', '?')}{extra}"
                     f" (mlflow run {r.get('mlflow_run_id') or '-'})")
        lines.append(f"    {r['path']}")
        lines += _describe_inputs(r.get("inputs", {}), "    ")
        rm = r.get("reward_model")
        if rm:
            lines.append(f"    reward model {rm.get('version')} (mlflow run {rm.get('mlflow_run_id') or '-'}),"
                         f" trained from {((rm.get('parent') or {}).get('stage'))} "
                         f"{((rm.get('parent') or {}).get('version'))}")
            lines += _describe_inputs(rm.get("inputs", {}), "      ")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemotron_cascade.lineage", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a stage (its latest checkpoint), a version, or a checkpoint path")
    parser.add_argument("--project", default=".", help="the project directory (default: the current one)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    args = parser.parse_args(argv)
    try:
        records = chain(args.checkpoint, Path(args.project))
    except (LineageError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(records, indent=2) if args.json else format_chain(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
