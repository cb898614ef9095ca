"""SWE reward: compare a predicted unified diff with the gold patch.

``swe_reward(predicted_patch, gold_patch, judge=None) -> [-1.0, 1.0]`` (docs/design.md, "Contracts"):

* ``-1.0``: the prediction does not parse as a unified diff, or parses to nothing (``unidiff`` reads
  prose as an empty patch without complaint, so zero files — or files without hunks or renames — is
  "empty");
* ``1.0``: the prediction equals the gold patch after normalisation;
* ``0.0``: every hunk of the prediction changes nothing (per file, removed lines == added lines, and
  no rename);
* otherwise the judge's probability that both patches are the same fix, in ``[0, 1]``.

Normalisation keeps, per file, the ordered removed lines and the ordered added lines with trailing
whitespace dropped, and the new path when the file is renamed. A file is keyed by the path it had
before the patch (``a/``/``b/`` dropped; the target path for a new file), so a gold patch that moves
``utils.py`` to ``paging.py`` and a prediction that edits ``utils.py`` in place are compared file to
file. Hunk headers and offsets, context lines, ``index``/mode lines and timestamps do not take part in
the equality.

The default judge, :class:`LexicalJudge`, scores each file shared by both patches as

    edit = change similarity × location similarity      (0 when the edit exactly undoes gold's)

and averages over the union of files (a file only one patch touches scores 0), in the spirit of
SWE-RL's patch-similarity reward (Meta, ``swerl/core/reward.py``: ``difflib`` over each file's
unified diff) with three differences:

* change similarity is rapidfuzz Indel over removed lines against removed lines and added lines
  against added lines, never across sides, so a patch that swaps them (reverses the fix) is not
  rewarded for sharing text; an exact reversal of a file's gold change scores 0 for that file;
* location similarity compares the context lines around each changed block, the up to 3 lines before
  and after (truncated to the width both patches have, so context width does not matter): for each
  predicted block, the Indel similarity with the most similar gold block, averaged. It keeps a short
  edit to the wrong function of the right file from scoring like the right edit. Without context on
  either side (``-U0`` diffs) the location is unknown and weighs nothing. Line numbers are never used;
* a rename weighs as much as the file's edit: when either patch renames the file, the file scores
  ``(edit + same_destination) / 2``.

Indel is bit-parallel: a 40k-character pair takes milliseconds, where ``difflib`` takes a minute. An
LLM judge can replace the lexical one through the :class:`Judge` protocol.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Protocol

import unidiff
from rapidfuzz.distance import Indel

from nemotron_cascade.rewards.answers import final_answer, last_fenced_block

logger = logging.getLogger(__name__)

DEV_NULL = "/dev/null"
CONTEXT_LINES = 3  # context lines per side of a changed block used for its location (unified diff's default)


@dataclass(frozen=True)
class Anchor:
    """Where a changed block sits: the context lines just before it and just after it (nearest last
    before, nearest first after), at most :data:`CONTEXT_LINES` each."""

    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class FileChange:
    """What a patch does to one file: removed and added lines, in order, right-stripped, and the new
    path of a renamed file. ``anchors`` (one per changed block) locate the change; they do not take
    part in equality, so context width never makes two equal changes differ."""

    removed: tuple[str, ...]
    added: tuple[str, ...]
    renamed_to: str | None = None
    anchors: tuple[Anchor, ...] = field(default=(), compare=False)

    @property
    def is_noop(self) -> bool:
        """True when the file ends up as it was (the same lines out and back in, no rename)."""
        return self.removed == self.added and self.renamed_to is None

    def reverses(self, other: FileChange) -> bool:
        """True when this change exactly undoes ``other``'s line change (its added lines out, its
        removed lines back in)."""
        return (self.removed, self.added) == (other.added, other.removed) and self.removed != self.added


NormalisedPatch = dict[str, FileChange]


class Judge(Protocol):
    """Scores whether a predicted patch is the same fix as the gold patch."""

    def __call__(self, predicted_patch: str, gold_patch: str) -> float:
        """Probability in ``[0, 1]`` that ``predicted_patch`` fixes what ``gold_patch`` fixes."""
        ...


def _strip_prefix(path: str) -> str:
    """Path without git's ``a/`` or ``b/`` prefix."""
    path = path.strip()
    return path[2:] if path.startswith(("a/", "b/")) else path


def _file_paths(patched: unidiff.PatchedFile) -> tuple[str, str | None]:
    """``(key, renamed_to)``: the path before the patch (the target for a new file) and, for a rename,
    the path after it."""
    source, target = (patched.source_file or "").strip(), (patched.target_file or "").strip()
    if source in (DEV_NULL, ""):
        return _strip_prefix(target), None
    if target in (DEV_NULL, ""):
        return _strip_prefix(source), None
    old, new = _strip_prefix(source), _strip_prefix(target)
    return old, (new if new != old else None)


def _runs(hunk: unidiff.Hunk) -> list[tuple[bool, list]]:
    """The hunk's lines grouped into runs: ``(True, [changed Line...])`` or ``(False, [context text...])``."""
    runs: list[tuple[bool, list]] = []
    for line in hunk:
        changed = line.is_removed or line.is_added
        if not changed and not line.is_context:
            continue
        item = line if changed else line.value.rstrip()
        if runs and runs[-1][0] == changed:
            runs[-1][1].append(item)
        else:
            runs.append((changed, [item]))
    return runs


def _hunk_changes(hunk: unidiff.Hunk) -> tuple[list[str], list[str], list[Anchor]]:
    """Removed lines, added lines and one :class:`Anchor` per block of consecutive changed lines."""
    removed, added, anchors = [], [], []
    runs = _runs(hunk)
    for index, (changed, items) in enumerate(runs):
        if not changed:
            continue
        removed += [line.value.rstrip() for line in items if line.is_removed]
        added += [line.value.rstrip() for line in items if line.is_added]
        before = runs[index - 1][1][-CONTEXT_LINES:] if index > 0 else []
        after = runs[index + 1][1][:CONTEXT_LINES] if index + 1 < len(runs) else []
        anchors.append(Anchor(tuple(before), tuple(after)))
    return removed, added, anchors


def parse_patch(patch: str) -> NormalisedPatch | None:
    """Normalised form of ``patch``, or ``None`` when it does not parse or neither changes a line nor
    renames a file."""
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
    files: dict[str, dict] = {}
    for patched in patch_set:
        path, renamed_to = _file_paths(patched)
        entry = files.setdefault(path, {"removed": [], "added": [], "anchors": [], "renamed_to": None})
        entry["renamed_to"] = renamed_to or entry["renamed_to"]
        for hunk in patched:
            removed, added, anchors = _hunk_changes(hunk)
            entry["removed"] += removed
            entry["added"] += added
            entry["anchors"] += anchors
    changes = {path: FileChange(tuple(e["removed"]), tuple(e["added"]), e["renamed_to"], tuple(e["anchors"]))
               for path, e in files.items() if e["removed"] or e["added"] or e["renamed_to"]}
    return changes or None


class LexicalJudge:
    """Mean over the union of changed files of each file's edit score (module docstring): change
    similarity × location similarity, halved with the rename when either patch renames the file.

    A file changed by only one of the two patches scores 0. Linear-ish time (bit-parallel LCS).
    """

    def __call__(self, predicted_patch: str, gold_patch: str) -> float:
        """Similarity in ``[0, 1]``; 0.0 when either patch does not parse."""
        predicted, gold = parse_patch(predicted_patch), parse_patch(gold_patch)
        if predicted is None or gold is None:
            return 0.0
        return similarity(predicted, gold)


def change_similarity(predicted: FileChange, gold: FileChange) -> float:
    """Indel similarity of removed lines with removed lines and added with added, pooled (1.0 when
    neither side changes a line)."""
    pairs = [("\n".join(predicted.removed), "\n".join(gold.removed)),
             ("\n".join(predicted.added), "\n".join(gold.added))]
    length = sum(len(a) + len(b) for a, b in pairs)
    if not length:
        return 1.0
    return 1.0 - sum(Indel.distance(a, b) for a, b in pairs) / length


def _anchor_similarity(predicted: Anchor, gold: Anchor) -> float | None:
    """Indel similarity of two blocks' context at the width both have; ``None`` when they share none."""
    before = min(len(predicted.before), len(gold.before))
    after = min(len(predicted.after), len(gold.after))
    if not before and not after:
        return None

    def text(anchor: Anchor) -> str:
        return "\n".join([*anchor.before[len(anchor.before) - before:], "\0", *anchor.after[:after]])

    return Indel.normalized_similarity(text(predicted), text(gold))


def location_similarity(predicted: FileChange, gold: FileChange) -> float:
    """For each predicted block, the similarity of its context with the closest gold block's, averaged;
    1.0 where no context can be compared (a ``-U0`` diff: location unknown)."""
    scores = []
    for anchor in predicted.anchors:
        found = [s for s in (_anchor_similarity(anchor, g) for g in gold.anchors) if s is not None]
        if found:
            scores.append(max(found))
    return sum(scores) / len(scores) if scores else 1.0


def file_similarity(predicted: FileChange, gold: FileChange) -> float:
    """One file's score in ``[0, 1]`` (module docstring)."""
    edit = (0.0 if predicted.reverses(gold)
            else change_similarity(predicted, gold) * location_similarity(predicted, gold))
    if predicted.renamed_to is None and gold.renamed_to is None:
        return edit
    return (edit + float(predicted.renamed_to == gold.renamed_to)) / 2


def similarity(predicted: NormalisedPatch, gold: NormalisedPatch) -> float:
    """Average per-file score over the union of files (a file missing on one side scores 0)."""
    paths = set(predicted) | set(gold)
    shared = [file_similarity(predicted[p], gold[p]) for p in paths if p in predicted and p in gold]
    return sum(shared) / len(paths)


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
