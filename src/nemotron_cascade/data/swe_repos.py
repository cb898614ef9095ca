"""Hydration of real SWE tasks: their repository's files at the task's checkout, read from git.

A real SWE row (:mod:`.sources.swe`) names its repository (``repo_name``: ``django/django``, or
SWE-smith's mirror ``swesmith/pygments__pygments.27649ebb``) and where to check it out:
``base_commit`` (SWE-bench, SWE-Fixer, SWE-reBench) or ``branch`` (SWE-smith: the branch named by
the ``instance_id``); its ``repo`` is empty. :func:`localise_rows` fills ``repo`` and localises the
row on the hydrated tree (BM25, :mod:`.localisation`). Rows that already carry files (the embedded
world's) are localised as they are.

Where repositories come from (:class:`RepoSourceConfig`, ``params:swe_repositories``):

* ``mirror``: a local directory with one git repository (bare or with a work tree) per
  ``owner/name``, at the first of ``<mirror>/<owner>/<name>``, ``<mirror>/<owner>/<name>.git``,
  ``<mirror>/<owner>__<name>``, ``<mirror>/<owner>__<name>.git`` that exists. A SWE-smith branch
  must be a local branch (``refs/heads``) of it.
* ``url``: a git URL template with ``{repo}`` (``owner/name``), ``{owner}`` and ``{name}``, e.g.
  ``https://github.com/{repo}.git`` or ``file:///srv/git/{owner}__{name}.git``; used for a
  repository the mirror lacks.

Each repository is cloned once (``git clone --bare``) into ``<cache_dir>/<owner>__<name>.git`` and
reused by every later row and run (a clone is made in a temporary directory and renamed into place,
so a killed clone leaves nothing half-made; a lock per repository keeps the threads of one process
from cloning it twice). A commit or branch the cached clone lacks (the mirror moved on since) gets
one ``git fetch`` of the origin's branches and tags per repository and process before it is an error.

Files are read without a work tree (``git ls-tree -r -l`` and ``git cat-file --batch``): regular
files (no symlinks or submodules) that are text (UTF-8 without NUL bytes), of at most
``max_file_bytes`` and, when ``suffixes`` is set, ending with one of them (SWE-bench's own BM25
retrieval indexes ``*.py``). The gold patch's ``files`` are read whatever their size or suffix.

What a hydrated row keeps. A whole repository per row would make the task jsonl gigabytes
(thousands of rows, each a full tree), so ``repo`` keeps the files that anything downstream reads:
the ``keep_files`` best BM25 candidates for the issue, ranked over the whole filtered tree (its
first ``top_k`` are the prompt's ``context_files``; RL-time localisation re-ranks within them with
the policy's guess), plus the gold patch's files that exist at the checkout (a file the fix creates
does not). ``checkout`` records the commit read (a branch's head can move).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nemotron_cascade.data import localisation

logger = logging.getLogger(__name__)

_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_REGULAR_FILE_MODES = (b"100644", b"100755")
_MEMO_BLOBS = 100_000  # a Hydrator forgets its memos past this many blobs (memory: text plus tokens)


class RepoError(ValueError):
    """A task's repository, commit or branch cannot be had; the message names the instance."""


@dataclass(frozen=True)
class RepoSourceConfig:
    """``params:swe_repositories``: where real SWE repositories come from and what a row keeps
    (module docstring). Off when neither ``mirror`` nor ``url`` is set."""

    mirror: str | None = None
    url: str | None = None
    cache_dir: str = "data/01_raw/swe_repositories"
    max_file_bytes: int = 262_144
    suffixes: tuple[str, ...] | None = None
    keep_files: int = 10

    def __post_init__(self):
        if self.url is not None and not any(f"{{{k}}}" in self.url for k in ("repo", "owner", "name")):
            raise ValueError(f"swe_repositories.url {self.url!r} names no repository: use {{repo}} "
                             "(owner/name), {owner} or {name}, e.g. https://github.com/{repo}.git")
        for name in ("max_file_bytes", "keep_files"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"swe_repositories.{name} must be a positive int, got {getattr(self, name)!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.mirror or self.url)


def describe(row: Mapping) -> str:
    """How errors name a row: its id and its source's instance id."""
    return f"row {row.get('id', '?')!r} (instance {row.get('instance_id', '?')!r})"


def split_repo_name(repo_name: str, where: str = "") -> tuple[str, str]:
    """``owner/name`` split in two; anything else is a :class:`RepoError`."""
    owner, sep, name = str(repo_name).strip().partition("/")
    if not sep or "/" in name or {owner, name} & {"", ".", ".."}:
        raise RepoError(f"{where + ': ' if where else ''}repository name {repo_name!r} is not 'owner/name'")
    return owner, name


def mirror_candidates(mirror: str, repo_name: str) -> list[Path]:
    """The directories of ``mirror`` that may hold ``repo_name``, in the order they are tried."""
    owner, name = split_repo_name(repo_name)
    root = Path(mirror)
    return [root / owner / name, root / owner / f"{name}.git", root / f"{owner}__{name}",
            root / f"{owner}__{name}.git"]


def origin_of(config: RepoSourceConfig, repo_name: str) -> str | None:
    """Where ``repo_name`` is cloned from: its mirror directory, else the URL template filled in,
    else None."""
    if config.mirror:
        for path in mirror_candidates(config.mirror, repo_name):
            if path.is_dir():
                return str(path.resolve())
    if config.url:
        owner, name = split_repo_name(repo_name)
        return config.url.format(repo=f"{owner}/{name}", owner=owner, name=name)
    return None


def _looked_in(config: RepoSourceConfig, repo_name: str) -> str:
    """What :func:`origin_of` tried, for an error message."""
    tried = [f"mirror {config.mirror!r} has none of {[str(p) for p in mirror_candidates(config.mirror, repo_name)]}"
             if config.mirror else "no mirror set"]
    return "; ".join(tried + [f"url {config.url!r}" if config.url else "no url template set"])


def _git(args: Sequence[str], git_dir: Path | None = None, data: bytes | None = None) -> subprocess.CompletedProcess:
    """``git [--git-dir D] args`` with its output captured; never prompts for credentials."""
    cmd = ["git", *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(cmd, input=data, capture_output=True, env=env, check=False)


def _stderr(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"git exited with {proc.returncode}"


def wanted_ref(row: Mapping, where: str) -> tuple[str, str]:
    """What to resolve for ``row`` and how to name it: its ``base_commit``, else its ``branch``
    (as ``refs/heads/<branch>``)."""
    for field, ref, what in (("base_commit", "{}", "commit {!r}"), ("branch", "refs/heads/{}", "branch {!r}")):
        value = row.get(field)
        if isinstance(value, str) and value.strip():
            if value.strip().startswith("-"):
                raise RepoError(f"{where}: field '{field}' {value!r} is not a git name")
            return ref.format(value.strip()), what.format(value.strip())
    raise RepoError(f"{where}: neither 'base_commit' nor 'branch' says where to check {row.get('repo_name')!r} out")


def rev_parse(git_dir: Path, ref: str) -> str | None:
    """The commit ``ref`` names in ``git_dir``, or None."""
    proc = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], git_dir)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


class RepoCache:
    """Bare clones under ``config.cache_dir``, one per repository, made once and reused
    (``clones`` counts the clones this cache made)."""

    def __init__(self, config: RepoSourceConfig):
        self.config = config
        self.root = Path(config.cache_dir)
        self.clones = 0
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._fetched: set[str] = set()

    def path(self, repo_name: str) -> Path:
        owner, name = split_repo_name(repo_name)
        return self.root / f"{owner}__{name}.git"

    def _lock(self, repo_name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo_name, threading.Lock())

    def git_dir(self, repo_name: str, where: str) -> Path:
        """The cached clone of ``repo_name``, cloned first when there is none."""
        target = self.path(repo_name)
        with self._lock(repo_name):
            if not target.is_dir():
                self._clone(repo_name, target, where)
        return target

    def _clone(self, repo_name: str, target: Path, where: str) -> None:
        origin = origin_of(self.config, repo_name)
        if origin is None:
            raise RepoError(f"{where}: repository {repo_name!r} not found: {_looked_in(self.config, repo_name)}")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=self.root))
        proc = _git(["clone", "--bare", "--quiet", origin, str(tmp)])
        if proc.returncode:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RepoError(f"{where}: repository {repo_name!r} could not be cloned from {origin}: {_stderr(proc)}")
        try:
            os.rename(tmp, target)
        except OSError:  # another process put its clone there first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.is_dir():
                raise
        self.clones += 1
        self._fetched.add(repo_name)  # just cloned: a fetch would bring nothing new
        logger.info("cloned %s from %s into %s", repo_name, origin, target)

    def _fetch(self, git_dir: Path, repo_name: str, ref: str) -> bool:
        """Fetch the origin's branches and tags (and ``ref`` itself when it is a full commit id)
        once per repository and process; whether it fetched."""
        with self._lock(repo_name):
            origin = origin_of(self.config, repo_name)
            if repo_name in self._fetched or origin is None:
                return False
            self._fetched.add(repo_name)
            proc = _git(["fetch", "--quiet", origin, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], git_dir)
            if proc.returncode:
                logger.warning("fetching %s from %s failed: %s", repo_name, origin, _stderr(proc))
            if _FULL_SHA.fullmatch(ref):
                _git(["fetch", "--quiet", origin, ref], git_dir)  # servers that serve any commit (GitHub)
            return True

    def resolve(self, git_dir: Path, row: Mapping, where: str) -> str:
        """The commit ``row`` is checked out at (fetching once when the clone lacks it)."""
        ref, what = wanted_ref(row, where)
        sha = rev_parse(git_dir, ref)
        if sha is None and self._fetch(git_dir, row["repo_name"], ref):
            sha = rev_parse(git_dir, ref)
        if sha is None:
            origin = origin_of(self.config, row["repo_name"]) or "no origin"
            raise RepoError(f"{where}: {what} not found in repository {row['repo_name']!r} "
                            f"(clone {git_dir}, from {origin})")
        return sha


def list_tree(git_dir: Path, commit: str) -> list[tuple[str, str, int]]:
    """``(path, blob id, size)`` of every regular file at ``commit`` (paths that are not UTF-8, and
    blobs the clone lacks, skipped)."""
    proc = _git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], git_dir)
    if proc.returncode:
        raise RepoError(f"git ls-tree {commit} in {git_dir} failed: {_stderr(proc)}")
    entries = []
    for record in proc.stdout.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        if len(fields) != 4 or fields[1] != b"blob" or fields[0] not in _REGULAR_FILE_MODES or not fields[3].isdigit():
            continue
        try:
            entries.append((path.decode("utf-8"), fields[2].decode(), int(fields[3])))
        except UnicodeDecodeError:
            continue
    return entries


def read_blobs(git_dir: Path, shas: Sequence[str]) -> dict[str, bytes]:
    """The contents of the blobs ``shas``, in one ``git cat-file --batch`` (blobs the clone lacks
    left out)."""
    shas = list(dict.fromkeys(shas))
    if not shas:
        return {}
    proc = _git(["cat-file", "--batch"], git_dir, ("\n".join(shas) + "\n").encode())
    if proc.returncode:
        raise RepoError(f"git cat-file --batch in {git_dir} failed: {_stderr(proc)}")
    data, pos, out = proc.stdout, 0, {}
    for sha in shas:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        if header[-1:] == [b"missing"]:
            pos = end + 1
            continue
        if len(header) != 3 or header[1] != b"blob":
            raise RepoError(f"git cat-file in {git_dir}: blob {sha} unreadable ({data[pos:end]!r})")
        size = int(header[2])
        out[sha] = data[end + 1:end + 1 + size]
        pos = end + 1 + size + 1
    return out


def as_text(data: bytes) -> str | None:
    """``data`` as text, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Hydrator:
    """Hydrates and localises real SWE rows. While it works through the rows of one repository it
    memoises their blobs' text and BM25 tokens (checkouts of one repository share most files)."""

    def __init__(self, config: RepoSourceConfig, cache: RepoCache | None = None):
        self.config = config
        self.cache = cache or RepoCache(config)
        self._repo_name: str | None = None
        self._texts: dict[str, str | None] = {}
        self._tokens: dict[tuple[str, str], list[str]] = {}

    def _indexed(self, path: str, size: int) -> bool:
        suffixes = self.config.suffixes
        return size <= self.config.max_file_bytes and (not suffixes or path.endswith(tuple(suffixes)))

    def _doc_tokens(self, path: str, source: str) -> list[str]:
        key = (path, source)
        if key not in self._tokens:
            self._tokens[key] = localisation.document_tokens(path, source)
        return self._tokens[key]

    def tree(self, row: Mapping) -> tuple[str, dict[str, str], dict[str, str]]:
        """The row's checkout: its commit, the files BM25 ranks, and the gold patch's files."""
        where = describe(row)
        repo_name = row.get("repo_name")
        split_repo_name(repo_name, where)
        if repo_name != self._repo_name or len(self._texts) > _MEMO_BLOBS:  # a new repository: forget
            self._repo_name, self._texts, self._tokens = repo_name, {}, {}
        git_dir = self.cache.git_dir(repo_name, where)
        commit = self.cache.resolve(git_dir, row, where)
        gold = set(row.get("files") or ())
        entries = [(p, s, n) for p, s, n in list_tree(git_dir, commit) if p in gold or self._indexed(p, n)]
        new = [s for _, s, _ in entries if s not in self._texts]
        blobs = read_blobs(git_dir, new)
        self._texts.update({sha: as_text(blobs[sha]) if sha in blobs else None for sha in new})
        texts = [(p, self._texts[s], n) for p, s, n in entries if self._texts[s] is not None]
        return (commit, {p: t for p, t, n in texts if self._indexed(p, n)},
                {p: t for p, t, _ in texts if p in gold})

    def localise(self, row: Mapping, top_k: int) -> dict:
        """``row`` with ``repo`` (the kept files), ``context_files`` (BM25's top-``top_k`` over the
        whole filtered tree) and ``checkout`` (the commit read)."""
        commit, indexed, gold = self.tree(row)
        if not indexed:
            raise RepoError(f"{describe(row)}: no text file of {row['repo_name']!r} at {commit[:12]} passes "
                            f"max_file_bytes={self.config.max_file_bytes} and suffixes={self.config.suffixes}")
        whole = {**row, "repo": indexed}
        ranking = localisation.bm25_ranking(whole, self._doc_tokens)
        context = localisation.localise(whole, top_k, ranking=ranking)
        kept = {p: indexed[p] for p in [*ranking[:self.config.keep_files], *context]} | gold
        return {**row, "repo": dict(sorted(kept.items())), "context_files": context, "checkout": commit}


def localise_rows(rows: Sequence[Mapping], top_k: int, config: RepoSourceConfig,
                  cache: RepoCache | None = None) -> list[dict]:
    """``rows`` with ``context_files`` (top-``top_k``), in their order: rows that carry files are
    localised on them; rows whose ``repo`` is empty are hydrated first (:class:`Hydrator`),
    repository by repository. Rows to hydrate with hydration off are a :class:`RepoError`."""
    bare = [i for i, row in enumerate(rows) if not row.get("repo")]
    if bare and not config.enabled:
        raise RepoError(f"{len(bare)} SWE row(s) carry no repository files, first {describe(rows[bare[0]])}: "
                        "set params:swe_repositories.mirror or .url to hydrate them from git")
    out = [{**row, "context_files": localisation.localise(row, top_k)} if row.get("repo") else None for row in rows]
    hydrator = Hydrator(config, cache)
    for i in sorted(bare, key=lambda j: str(rows[j].get("repo_name"))):
        out[i] = hydrator.localise(rows[i], top_k)
    if bare:
        logger.info("hydrated %d SWE rows from %d repositories (%d cloned now, cache %s)", len(bare),
                    len({rows[i].get("repo_name") for i in bare}), hydrator.cache.clones, config.cache_dir)
    return out
