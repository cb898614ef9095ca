"""A versioned Kedro dataset for ``save_pretrained`` checkpoints (model + tokenizer + lineage).

No kedro-datasets class saves a ``save_pretrained`` directory with versioning, so this one does:
each save goes to ``<filepath>/<version>/<name>/``, written first to a temporary sibling directory
and renamed into place, so a crash mid-save never leaves a half checkpoint that a later load would
pick up (versions are found by the exact final name). A writer holds a lock on its temporary
directory (``flock`` on a file inside it, released by the kernel however the process dies), so the
next save sweeps the temporary directories of writers that died (SIGKILL, power loss) and no
longer holds a reused pid for a live writer. Files get the process umask's mode like every other
output (safetensors writes its weights through a private 0600 temporary file). A model with a
NaN/inf tensor is refused (``DatasetError``) before anything is written. ``--load-versions=<dataset>:<version>`` pins a
version; otherwise the latest complete one loads, except that a dataset object that saved loads
back its own version (a concurrent run's newer one is not picked up mid-run). Two processes saving
under the same version (the same millisecond) get two versions: see ``_claim_version``.

A checkpoint that cannot be read (a truncated weights file, a deleted ``config.json``) fails naming
the version directory and the file, and what to do: rerun the stage, or pin another version.

Device and dtype: a save writes the model from wherever it is (a GPU after a stage trained it
there) in the dtype it has (the configured one: the training loop casts fp32 master weights back,
:mod:`~nemotron_cascade.training.placement`); a load puts it on the CPU, in the dtype it was saved in
(``dtype: auto``, the default) or the catalog's ``dtype``, until the next stage places it.

Beside the weights, ``lineage.json`` records where the checkpoint came from: the stage, the version
and path of the checkpoint it was trained from, the data it saw and the MLflow run that made it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
WRITER_LOCK = ".writer.lock"  # inside a temporary save directory, held (flock) while its writer lives
SWEEP_GRACE_S = 60.0  # a temporary directory younger than this may be a writer that has not locked it yet


class _Missing(Exception):
    """A file of a checkpoint directory is not there."""


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
                 dtype: str = "auto", metadata: dict | None = None):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=os.path.isdir)
        self._model_class, self._dtype, self.metadata = model_class, dtype, metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version, "model_class": self._model_class}

    def load(self) -> Checkpoint:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

        from nemotron_cascade.models import load_tokenizer

        path = Path(self._get_load_path())
        if not path.is_dir():
            raise DatasetError(self._no_checkpoint_message(path))
        cls = AutoModelForSequenceClassification if self._model_class == "auto-sequence-classification" \
            else AutoModelForCausalLM
        with self._reading(path, CONFIG_FILE):
            if not (path / CONFIG_FILE).is_file():
                raise _Missing
            AutoConfig.from_pretrained(path)  # its errors name config.json, not "Should have a model_type key"
        weights = next((f for f in WEIGHTS_FILES if (path / f).is_file()), WEIGHTS_FILES[0])
        with self._reading(path, weights):
            if not (path / weights).is_file():
                raise _Missing
            dtype = self._dtype if self._dtype == "auto" else getattr(torch, self._dtype)  # auto: as saved
            model = cls.from_pretrained(path, dtype=dtype)  # on the CPU: the next stage places it
        model.eval()
        lineage_file = path / LINEAGE_FILE
        with self._reading(path, LINEAGE_FILE):
            lineage = json.loads(lineage_file.read_text()) if lineage_file.exists() else {}
        lineage.update(path=str(path), version=self.resolve_load_version())
        with self._reading(path, "tokenizer.json"):
            tokenizer = load_tokenizer(str(path))
        return Checkpoint(model=model, tokenizer=tokenizer, lineage=lineage)

    def versions(self) -> list[str]:
        """The versions holding a complete (renamed into place) checkpoint, oldest first."""
        if self._version is None:
            return []
        return sorted(PurePosixPath(p).parent.name for p in self._get_versions())

    def _other_versions_hint(self, path: Path) -> str:
        if self._version is None:
            return "or put a complete checkpoint there"
        others = [v for v in self.versions() if v != path.parent.name]
        listed = ", ".join(others[-5:]) if others else "none"
        return (f"or pin another version with --load-versions=<dataset>:<version> "
                f"(other versions under {self._filepath}: {listed})")

    def _no_checkpoint_message(self, path: Path) -> str:
        if self._version is None:
            return f"no checkpoint at {path}"
        return (f"no checkpoint at {path}: version {path.parent.name} of {self._filepath} does not exist "
                f"(versions that exist: {', '.join(self.versions()) or 'none'})")

    @contextlib.contextmanager
    def _reading(self, path: Path, file: str):
        """Turn a failure to read ``file`` of the checkpoint at ``path`` into one :class:`DatasetError`
        naming the version directory, the file and what to do (the library's traceback, hundreds of
        lines that named neither, is logged at DEBUG level)."""
        try:
            yield
        except Exception as exc:
            log.debug("reading %s of the checkpoint %s failed", file, path, exc_info=True)
            problem = "is missing" if isinstance(exc, _Missing) else f"cannot be read ({type(exc).__name__}: {exc})"
            where = f"version directory {path.parent}" if self._version is not None else f"directory {path}"
            raise DatasetError(f"the checkpoint in {where} is damaged or incomplete: {path / file} {problem}. "
                               f"Rerun the stage that writes it, {self._other_versions_hint(path)}") from None

    def save(self, data: Checkpoint) -> None:
        from nemotron_cascade.training.faults import NonFiniteError, check_finite_state

        # not _get_save_path(), which refuses a version that exists: _claim_version resolves that
        path = Path(self._get_versioned_path(self.resolve_save_version()) if self._version else self._filepath)
        try:  # a poisoned model is never written: nothing downstream may load it
            check_finite_state(f"checkpoint {path}", data.model)
        except NonFiniteError as e:
            raise DatasetError(str(e)) from e
        if self._version is not None:
            sweep_dead_saves(path.parent.parent, path.name)
        path, made_version_dir = self._claim_version(path)  # <filepath>/<version>/ of a versioned save
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        lock = None
        try:
            tmp.mkdir(parents=True)
            lock = _hold_writer_lock(tmp)
            data.model.save_pretrained(tmp)
            data.tokenizer.save_pretrained(tmp)
            lineage = {**data.lineage, "version": self.resolve_save_version(), "path": str(path)}
            (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, default=str))
            _give_umask_modes(tmp)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if made_version_dir and self._version is not None:  # no empty version directory left behind
                try:
                    path.parent.rmdir()
                except OSError:
                    pass
            raise
        finally:
            if lock is not None:
                os.close(lock)
        with contextlib.suppress(OSError):  # held until the checkpoint was in place; a sweeper never looks here
            (path / WRITER_LOCK).unlink()
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


def _hold_writer_lock(tmp: Path) -> int:
    """Create and lock (``flock``, exclusive) the writer lock inside ``tmp``; returns its descriptor.

    The kernel releases the lock when this process dies, however it dies, so a sweeper that can take
    it knows the writer is gone, whatever process now has its pid.
    """
    fd = os.open(tmp / WRITER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _writer_alive(tmp: Path) -> bool:
    """Whether the save writing the temporary directory ``tmp`` may still be running.

    Alive: its writer lock is held, or ``tmp`` changed less than ``SWEEP_GRACE_S`` ago (a writer
    between ``mkdir`` and ``flock``), or it cannot be told (keep it). Dead: the lock can be taken, or
    an old directory has no lock file (a save from before the lock, or one killed before locking).
    """
    try:
        if time.time() - tmp.stat().st_mtime < SWEEP_GRACE_S:
            return True
        fd = os.open(tmp / WRITER_LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held by a live writer; anything else: cannot tell
        return True
    finally:
        os.close(fd)
    return False


def sweep_dead_saves(root: Path, name: str) -> list[Path]:
    """Remove the temporary directories ``<root>/<version>/.<name>.tmp-*`` of saves whose writer died,
    and their version directories when nothing else is in them. Returns the directories removed.

    A SIGKILLed save leaves its temporary directory (no cleanup runs); it is never loaded (versions
    are found by the final name), but it stayed on disk for ever. A live writer's is left alone.
    """
    import glob

    removed = []
    for tmp in sorted(Path(root).glob(f"*/.{glob.escape(name)}.tmp-*")):
        if not tmp.is_dir() or _writer_alive(tmp):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tmp.parent.rmdir()  # the version directory, when it held only the dead save
        log.warning("removed %s: the leftovers of a checkpoint save that was killed before it finished", tmp)
        removed.append(tmp)
    return removed


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _give_umask_modes(directory: Path) -> None:
    """Give every file under ``directory`` the mode a plain ``open`` gives (``0666 & ~umask``), and
    every directory ``0777 & ~umask``: safetensors writes ``model.safetensors`` as a 0600 temporary
    file renamed into place, unreadable to a team sharing the checkpoints."""
    mask = _umask()
    for p in directory.rglob("*"):
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)
