"""Local git repositories for SWE hydration tests (``data.swe_repos``): made with the git CLI, so a
test can check out real commits and branches without a network."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# a fixed identity and date: the same files give the same commit ids on every machine
_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_AUTHOR_DATE": "2020-01-01T00:00:00+0000",
        "GIT_COMMITTER_DATE": "2020-01-01T00:00:00+0000", "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.devnull}


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
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def bare_clone(source: Path, dest: Path) -> Path:
    """A bare copy of ``source`` (its local branches) at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(dest.parent, "clone", "-q", "--bare", str(source), str(dest))
    return dest


def pre_images(patch: str) -> dict[str, str]:
    """What ``patch`` shows of each file it changes before the change (context and removed lines;
    files it creates have none)."""
    import unidiff

    out = {}
    for patched in unidiff.PatchSet(patch):
        if patched.is_added_file:
            continue
        out[patched.path] = "".join(line.value for hunk in patched for line in hunk if not line.is_added)
    return out


def mirror_for_tasks(tasks: list[dict], mirror: Path) -> dict[str, str]:
    """A mirror directory (``<mirror>/<owner>/<name>``) holding, for every mapped real SWE task, a
    commit whose files are its gold patch's pre-images (one commit per task, in order), and its
    ``branch`` when it has one (SWE-smith). Returns ``{instance_id: commit}``: a fixture row's
    ``base_commit`` must name a commit that exists, so a test rewrites it with these."""
    commits = {}
    for task in tasks:
        repo = mirror / task["repo_name"]
        if not (repo / ".git").is_dir():
            init_repo(repo)
            commit_files(repo, {"README.md": f"# {task['repo_name']}\n"}, "initial")
        git(repo, "checkout", "-q", "main")
        commits[task["instance_id"]] = commit_files(repo, pre_images(task["gold_patch"]), task["instance_id"])
        if task.get("branch"):
            git(repo, "branch", "-f", task["branch"])
    return commits
