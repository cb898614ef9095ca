"""Local git repositories for SWE hydration tests (``data.swe_repos``): made with the git CLI, so a
test can check out real commits and branches without a network."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.devnull}


def git(cwd: Path, *args: str) -> str:
    """``git args`` in ``cwd`` (a fixed identity, no user or system config); its stdout."""
    out = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **_ENV}, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {out.stderr.strip()}")
    return out.stdout.strip()


def init_repo(path: Path) -> Path:
    """An empty repository with a work tree at ``path``, default branch ``main``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_files(repo: Path, files: dict[str, str | bytes | None], message: str = "change") -> str:
    """Write ``files`` (text, bytes, or None to delete) into ``repo``'s work tree and commit them;
    the new commit's id."""
    for rel, content in files.items():
        target = repo / rel
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def bare_clone(source: Path, dest: Path) -> Path:
    """A bare copy of ``source`` (its local branches) at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(dest.parent, "clone", "-q", "--bare", str(source), str(dest))
    return dest
