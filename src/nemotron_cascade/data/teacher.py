"""Resumable teacher generation: answers go to a JSONL cache as they finish; a rerun skips them.

A teacher at scale runs for hours against a server that can fail; what it answered must survive.
:func:`generate_responses` asks the teacher batch by batch and appends one line per finished
request to the cache, ``{"key", "id", "thinking", "responses"}``, flushed (and fsynced) after every
batch. ``key`` hashes the row's whole content and the mode, so a changed row under the same id
(another world seed) is asked again. A crash mid-write leaves a torn last line: it is dropped with
a warning. One file holds one teacher: :func:`cache_path` names it by a hash of the backend, the
teacher's ``identity`` (the options that decide its answers) and k. Answers a teacher takes from
the row itself (``teacher.from_data``: the ``dataset`` teacher's references) are neither asked nor
written to the cache: only what the teacher generates is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from nemotron_cascade.generation.teachers import as_teacher

log = logging.getLogger(__name__)


class TeacherGenerationError(RuntimeError):
    """The teacher failed; the finished answers are kept in the cache (when there is one)."""


def cache_path(cache_dir: str | Path, backend: str, identity: dict, k: int) -> Path:
    """``<cache_dir>/<backend>-k<k>-<hash of backend, identity and k>.jsonl``."""
    text = json.dumps({"backend": backend, "identity": identity, "k": k}, sort_keys=True, default=str)
    return Path(cache_dir) / f"{backend}-k{k}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"


def request_key(row: dict, thinking: bool) -> str:
    """A stable hash of a request: the row's whole content and the mode."""
    text = json.dumps([row, bool(thinking)], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_cache(path: str | Path, k: int) -> dict[str, list[str]]:
    """The finished requests of a cache file by key. A torn last line (no newline: a crash while
    writing) is cut off with a warning; a bad line elsewhere is an error."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    lines = data.split(b"\n")  # the last piece is b"" when the file ends with a newline
    out, offset = {}, 0
    for n, line in enumerate(lines):
        last = n == len(lines) - 1
        record = _parse(line, k) if line.strip() else None
        if line.strip() and record is None:
            if not last:
                raise ValueError(f"teacher cache {path}: line {n + 1} is not a finished request; the file is "
                                 f"damaged beyond a torn last line: delete it to regenerate")
            log.warning("teacher cache %s: dropping a torn last line (%d bytes) left by an interrupted run",
                        path, len(line))
            os.truncate(path, offset)
            break
        if record is not None:
            out[record[0]] = record[1]
            if last:  # complete record but its newline never made it: add it before appending
                with open(path, "ab") as f:
                    f.write(b"\n")
        offset += len(line) + 1
    return out


def _parse(line: bytes, k: int) -> tuple[str, list[str]] | None:
    try:
        record = json.loads(line)
        key, responses = record["key"], record["responses"]
    except (ValueError, KeyError, TypeError):
        return None
    ok = isinstance(key, str) and isinstance(responses, list) and len(responses) == k \
        and all(isinstance(r, str) for r in responses)
    return (key, responses) if ok else None


def generate_responses(rows: list[dict], modes: list[bool], teacher, k: int = 1,
                       cache_path: str | Path | None = None, batch_size: int = 64) -> list[list[str]]:
    """The teacher's ``k`` responses to every (row, mode) request, in request order.

    Requests already in ``cache_path`` are not asked again; new ones are asked ``batch_size`` at a
    time and appended to it. Without ``cache_path`` nothing is kept. ``teacher``: a batched
    teacher (``respond``) or a function ``(row, thinking) -> str``.
    """
    if len(rows) != len(modes):
        raise ValueError(f"generate_responses: {len(rows)} rows but {len(modes)} modes")
    if batch_size < 1:
        raise ValueError(f"generate_responses: batch_size must be >= 1, got {batch_size}")
    teacher = as_teacher(teacher)
    keys = [request_key(r, m) for r, m in zip(rows, modes)]
    first = {key: i for i, key in reversed(list(enumerate(keys)))}  # first request of each distinct key
    from_data = getattr(teacher, "from_data", lambda row, mode: None)  # answers taken from the rows themselves
    local = {key: a for key, i in first.items() if (a := from_data(rows[i], modes[i])) is not None}
    done = load_cache(cache_path, k) if cache_path else {}
    todo = sorted(i for key, i in first.items() if key not in done and key not in local)
    asked = len(first) - len(local)
    if local:
        skipped = Counter(rows[first[key]].get("source", "world") for key, a in local.items() if not a)
        log.info("teacher: %d requests answered from the rows' own responses, %d of them skipped (no answer): %s",
                 len(local), sum(skipped.values()), dict(skipped))
    log.info("teacher: %d requests, %d already in %s, %d to generate (k=%d)", asked, asked - len(todo),
             cache_path or "no cache", len(todo), k)
    if cache_path and todo:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    with (open(cache_path, "a", encoding="utf-8") if cache_path and todo else nullcontext()) as f, \
            tqdm(total=len(todo), desc="teacher", unit="req",
                 disable=not teacher.cacheable or len(todo) <= batch_size) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            try:
                answers = teacher.respond([rows[i] for i in batch], [modes[i] for i in batch], k)
                if len(answers) != len(batch) or any(len(a) != k for a in answers):
                    raise ValueError(f"teacher returned {[len(a) for a in answers]} responses for "
                                     f"{len(batch)} requests with k={k}")
            except Exception as e:
                kept = sum(key in done and key not in local for key in first)
                where = f"kept in {cache_path}; rerun to resume from there" if cache_path else \
                    "not kept (no cache path: set teacher.cache_dir to make generation resumable)"
                raise TeacherGenerationError(
                    f"teacher failed on requests {start + 1}-{start + len(batch)} of the {len(todo)} to generate: "
                    f"{type(e).__name__}: {e}. {kept} of {asked} finished requests are {where}") from e
            for i, responses in zip(batch, answers):
                done[keys[i]] = list(responses)
            if f is not None:
                f.writelines(json.dumps({"key": keys[i], "id": rows[i].get("id"), "thinking": bool(modes[i]),
                                         "responses": done[keys[i]]}, ensure_ascii=False) + "\n" for i in batch)
                f.flush()
                os.fsync(f.fileno())
            bar.update(len(batch))
    return [local[key] if key in local else done[key] for key in keys]
