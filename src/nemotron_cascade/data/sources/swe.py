"""SWE training sources (SWE-bench, SWE-smith, SWE-Fixer): the gold patch's files, and the fields
real SWE rows need beyond ``task.swe`` (:func:`check_real_swe_task`). A mapped row's ``repo`` is
empty: ``data.swe_repos`` fills it from ``repo_name`` at ``base_commit`` or ``branch``."""

from __future__ import annotations

from collections.abc import Mapping

import unidiff
from unidiff.constants import LINE_TYPE_ADDED, LINE_TYPE_NO_NEWLINE, LINE_TYPE_REMOVED

from nemotron_cascade.data.sources.fields import RowError, strings_of, text_of

DEV_NULL = "/dev/null"


def _strip_prefix(path: str) -> str:
    path = path.strip()
    return path[2:] if path.startswith(("a/", "b/")) else path


def _patch_set(patch: str, name: str) -> unidiff.PatchSet:
    try:
        return unidiff.PatchSet(patch)
    except unidiff.UnidiffParseError as exc:
        raise RowError(name, f"not a unified diff ({exc})") from None


def patch_files(patch: str, name: str = "patch") -> list[str]:
    """Files a unified diff changes, most-changed first (ties keep diff order); deleted files by
    their source path."""
    counts: dict[str, int] = {}
    for patched in _patch_set(patch, name):
        target = patched.target_file or ""
        path = _strip_prefix(patched.source_file if target.strip() == DEV_NULL else target)
        changed = sum(1 for hunk in patched for line in hunk if line.is_added or line.is_removed)
        if changed:
            counts[path] = counts.get(path, 0) + changed
    if not counts:
        raise RowError(name, "the diff changes no file")
    order = list(counts)
    return sorted(order, key=lambda p: (-counts[p], order.index(p)))


def reverse_patch(patch: str) -> str:
    """The unified diff that undoes ``patch`` (sides, hunk ranges and +/- lines swapped; removed
    lines first in each change block, as ``git diff`` writes them)."""
    out: list[str] = []
    for patched in _patch_set(patch, "patch"):
        source, target = patched.source_file.strip(), patched.target_file.strip()
        out.append(f"--- {DEV_NULL if target == DEV_NULL else 'a/' + _strip_prefix(target)}\n")
        out.append(f"+++ {DEV_NULL if source == DEV_NULL else 'b/' + _strip_prefix(source)}\n")
        for hunk in patched:
            section = f" {hunk.section_header}" if hunk.section_header else ""
            out.append(f"@@ -{hunk.target_start},{hunk.target_length} "
                       f"+{hunk.source_start},{hunk.source_length} @@{section}\n")
            removed: list[str] = []
            added: list[str] = []
            last: list[str] = out
            for line in hunk:
                text = line.value if line.value.endswith("\n") else line.value + "\n"
                if line.line_type == LINE_TYPE_ADDED:
                    removed.append("-" + text)
                    last = removed
                elif line.line_type == LINE_TYPE_REMOVED:
                    added.append("+" + text)
                    last = added
                elif line.line_type == LINE_TYPE_NO_NEWLINE:
                    last.append("\\" + text)
                else:
                    out.extend(removed + added)
                    removed, added = [], []
                    out.append(" " + text)
                    last = out
            out.extend(removed + added)
    return "".join(out)


def _swe_task(raw: Mapping, gold_patch: str, checkout: dict[str, str]) -> dict:
    """The fields every SWE source maps to; ``checkout`` says where the repository is checked out
    (``base_commit``, or SWE-smith's ``branch``)."""
    files = patch_files(gold_patch)
    task = {"prompt": text_of(raw, "problem_statement"), "repo": {}, "repo_name": text_of(raw, "repo"),
            **checkout, "instance_id": text_of(raw, "instance_id"),
            "gold_patch": gold_patch, "file": files[0], "files": files,
            "key": raw["instance_id"]}
    if raw.get("FAIL_TO_PASS") is not None:
        task["fail_to_pass"] = strings_of(raw, "FAIL_TO_PASS")
    return task


def map_swe_bench(raw: Mapping) -> dict:
    """princeton-nlp/SWE-bench, split ``train`` (and SWE-bench_Verified ``test`` as a benchmark).

    Columns from the dataset card: ``repo``, ``instance_id``, ``base_commit``, ``patch`` (the gold
    patch, tests excluded), ``test_patch``, ``problem_statement``, ``hints_text``, ``created_at``,
    ``version``, ``FAIL_TO_PASS`` / ``PASS_TO_PASS`` (JSON text lists), ``environment_setup_commit``.
    """
    return _swe_task(raw, text_of(raw, "patch"), {"base_commit": text_of(raw, "base_commit")})


def map_swe_fixer(raw: Mapping) -> dict:
    """internlm/SWE-Fixer-Train-110K, split ``train`` (one ``swe-fixer-train-110k.jsonl``).

    SWE-bench's column names (``instance_id``, ``repo``, ``base_commit``, ``problem_statement``,
    ``patch``) per the SWE-Fixer paper (arXiv:2501.05040, issue→patch pairs built the SWE-bench
    way); the card has no schema and a Hub discussion notes the rows lack ``FAIL_TO_PASS`` /
    ``PASS_TO_PASS``, so tests are optional. Verify the names on the first real load.
    """
    return _swe_task(raw, text_of(raw, "patch"), {"base_commit": text_of(raw, "base_commit")})


def map_swe_smith(raw: Mapping) -> dict:
    """SWE-bench/SWE-smith, split ``train``.

    Columns from the dataset card: ``instance_id``, ``patch`` (the diff that *introduces* the bug),
    ``FAIL_TO_PASS`` / ``PASS_TO_PASS`` (lists), ``image_name``, ``repo`` (the SWE-smith mirror,
    ``swesmith/<owner>__<name>.<commit[:8]>``) and ``problem_statement`` (generated issue text; empty
    for instances without one, which are rejected). There is no ``base_commit`` (the card dropped it
    in mid-2025): the buggy repository is the mirror's branch named by the ``instance_id``, which is
    what SWE-smith's own harness checks out (``RepoProfile.get_container``: ``git checkout
    <instance_id>``), so the task's ``branch`` is the ``instance_id``. The gold fix is the reversed
    ``patch``.
    """
    task = _swe_task(raw, reverse_patch(text_of(raw, "patch")), {"branch": text_of(raw, "instance_id")})
    return {**task, "image_name": raw.get("image_name")}


def _filled(task: dict, name: str) -> bool:
    return isinstance(task.get(name), str) and bool(task[name].strip())


def check_real_swe_task(task: dict) -> str | None:
    """Fields of real SWE rows that ``task.swe`` does not name: the repository and where to check it
    out (``base_commit``, or ``branch`` for SWE-smith), and the gold patch's files."""
    if not _filled(task, "repo_name"):
        return "missing field 'repo_name'"
    if not (_filled(task, "base_commit") or _filled(task, "branch")):
        return "missing field 'base_commit' or 'branch' (where to check the repository out)"
    if not isinstance(task.get("files"), list) or not task["files"] or task["file"] not in task["files"]:
        return "field 'files' must be a non-empty list holding 'file'"
    return None
