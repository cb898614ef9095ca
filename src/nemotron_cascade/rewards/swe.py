"""SWE reward: compare a predicted unified diff with the gold patch.

``swe_reward(predicted_patch, gold_patch, judge=None) -> [-1.0, 1.0]`` (docs/design.md, "Contracts"):

* ``-1.0``: the prediction does not parse as a unified diff, or parses to nothing (``unidiff`` reads
  prose as an empty patch without complaint, so zero files — or files without hunks — is "empty");
* ``1.0``: the prediction equals the gold patch after normalisation;
* ``0.0``: every hunk of the prediction changes nothing (per file, removed lines == added lines);
* otherwise the judge's probability that both patches are the same fix, in ``[0, 1]``.

Normalisation keeps, per file (target path without ``a/``/``b/``; the source path for deletions), the
ordered removed lines and the ordered added lines with trailing whitespace dropped. Hunk headers and
offsets, context lines, ``index``/mode lines and timestamps do not matter.

The default judge, :class:`LexicalJudge`, scores the lexical similarity of the normalised changes
(rapidfuzz Indel, bit-parallel: a 40k-character pair takes milliseconds, where ``difflib`` takes a
minute). An LLM judge can replace it through the :class:`Judge` protocol.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

import unidiff
from rapidfuzz.distance import Indel

from nemotron_cascade.rewards.answers import final_answer, last_fenced_block

logger = logging.getLogger(__name__)

DEV_NULL = "/dev/null"


@dataclass(frozen=True)
class FileChange:
    """What a patch does to one file: removed and added lines, in order, right-stripped."""

    removed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def is_noop(self) -> bool:
        """True when the file ends up as it was (the same lines out and back in)."""
        return self.removed == self.added

    def as_text(self) -> str:
        """One string for similarity: ``-line`` rows, then ``+line`` rows."""
        return "\n".join(["-" + line for line in self.removed] + ["+" + line for line in self.added])


NormalisedPatch = dict[str, FileChange]


class Judge(Protocol):
    """Scores whether a predicted patch is the same fix as the gold patch."""

    def __call__(self, predicted_patch: str, gold_patch: str) -> float:
        """Probability in ``[0, 1]`` that ``predicted_patch`` fixes what ``gold_patch`` fixes."""
        ...


def _strip_prefix(path: str) -> str:
    """Path without git's ``a/`` or ``b/`` prefix."""
    return path[2:] if path.startswith(("a/", "b/")) else path


def _file_path(patched: unidiff.PatchedFile) -> str:
    """The file a section changes: its target, or its source when the file is deleted."""
    target = patched.target_file or ""
    path = patched.source_file if target == DEV_NULL or not target else target
    return _strip_prefix(path.strip())


def parse_patch(patch: str) -> NormalisedPatch | None:
    """Normalised form of ``patch``, or ``None`` when it does not parse or has no hunk lines."""
    if not isinstance(patch, str):
        raise TypeError(f"patch must be a str, got {type(patch).__name__}")
    try:
        patch_set = unidiff.PatchSet(patch)
    except unidiff.UnidiffParseError as error:
        logger.debug("patch does not parse: %s", error)
        return None
    except Exception as error:  # noqa: BLE001 - model output must never crash the trainer
        logger.warning("unidiff failed on a patch (%s: %s); treated as unparsable", type(error).__name__, error)
        return None
    removed: dict[str, list[str]] = {}
    added: dict[str, list[str]] = {}
    for patched in patch_set:
        path = _file_path(patched)
        for hunk in patched:
            for line in hunk:
                if line.is_removed:
                    removed.setdefault(path, []).append(line.value.rstrip())
                elif line.is_added:
                    added.setdefault(path, []).append(line.value.rstrip())
    paths = dict.fromkeys([*removed, *added])
    if not paths:
        return None
    return {p: FileChange(tuple(removed.get(p, ())), tuple(added.get(p, ()))) for p in paths}


class LexicalJudge:
    """Mean over the union of changed files of the Indel similarity of their normalised changes.

    A file changed by only one of the two patches scores 0. Linear-ish time (bit-parallel LCS).
    """

    def __call__(self, predicted_patch: str, gold_patch: str) -> float:
        """Similarity in ``[0, 1]``; 0.0 when either patch does not parse."""
        predicted, gold = parse_patch(predicted_patch), parse_patch(gold_patch)
        if predicted is None or gold is None:
            return 0.0
        return similarity(predicted, gold)


def similarity(predicted: NormalisedPatch, gold: NormalisedPatch) -> float:
    """Average per-file Indel similarity over the union of files (missing on one side → 0)."""
    paths = set(predicted) | set(gold)
    total = 0.0
    for path in paths:
        if path in predicted and path in gold:
            total += Indel.normalized_similarity(predicted[path].as_text(), gold[path].as_text())
    return total / len(paths)


def _checked_score(score: object) -> float:
    """A judge's score as a float in ``[0, 1]``; NaN or a non-number is a judge bug."""
    if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
        raise ValueError(f"judge returned {score!r}, expected a number in [0, 1]")
    if not 0.0 <= score <= 1.0:
        logger.warning("judge returned %s outside [0, 1]; clipped", score)
    return min(1.0, max(0.0, float(score)))


def swe_reward(predicted_patch: str, gold_patch: str, judge: Judge | None = None) -> float:
    """-1 unparsable/empty, 1 identical after normalisation, 0 no-op, else the judge's score."""
    gold = parse_patch(gold_patch)
    if gold is None:
        raise ValueError("gold patch does not parse as a unified diff or changes no lines")
    if all(change.is_noop for change in gold.values()):
        raise ValueError("gold patch changes nothing (every file's removed lines equal its added lines)")
    predicted = parse_patch(predicted_patch)
    if predicted is None:
        return -1.0
    if predicted == gold:
        return 1.0
    if all(change.is_noop for change in predicted.values()):
        return 0.0
    return _checked_score((judge or LexicalJudge())(predicted_patch, gold_patch))


def extract_patch(response: str) -> str | None:
    """The patch in a model response: the final answer's last ```diff/```patch block, else the
    last fenced block, else the whole final answer; ``None`` for an unclosed think block."""
    answer = final_answer(response)
    if answer is None:
        return None
    block = last_fenced_block(answer, ("diff", "patch", "udiff"))
    if block is None:
        block = last_fenced_block(answer)
    return answer if block is None else block
