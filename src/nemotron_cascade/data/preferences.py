"""Preference pairs for the reward model: built from task rows, checked, split train/validation.

A pair is ``{"id", "domain", "source_id", "prompt", "chosen", "rejected", "flaw", "split"}``. The embedded
world gives pairs for general chat and instruction following (:func:`world.preference_pairs`); the
``gpu`` profile maps an HF preference set (HelpSteer-style) onto the same fields.

A pair whose texts are identical (after stripping), or that lacks a text, is bad input: it would
teach the reward model nothing and usually means a broken upstream join, so it raises an error
naming the source and the row instead of being trained on.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping

from nemotron_cascade.data import world

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")


class PreferencePairError(ValueError):
    """A preference pair that cannot be trained on; the message names the source and the row."""


def check_pair(pair: Mapping, index: int, source: str) -> None:
    """Raise :class:`PreferencePairError` when ``pair`` (row ``index`` of ``source``) is unusable."""
    where = f"{source} row {index} (id {pair.get('id', '?')!r})"
    for field in ("prompt", "chosen", "rejected"):
        value = pair.get(field)
        if not isinstance(value, str) or not value.strip():
            raise PreferencePairError(f"{where}: field {field!r} must be a non-empty string, got {value!r}")
    if pair["chosen"].strip() == pair["rejected"].strip():
        raise PreferencePairError(f"{where}: 'chosen' and 'rejected' are identical, so the pair prefers "
                                  f"nothing ({pair['chosen'][:60]!r})")


def check_pairs(pairs: Iterable[Mapping], source: str) -> list[Mapping]:
    """Every pair checked (see :func:`check_pair`); returns them as a list."""
    pairs = list(pairs)
    for i, pair in enumerate(pairs):
        check_pair(pair, i, source)
    return pairs


def _split_of(source_id: str, validation_share: float, seed: int) -> str:
    """Split by the source row, so every pair of one prompt lands on the same side."""
    u = int(hashlib.sha1(f"{seed}|{source_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if u < validation_share else "train"


def build_pairs(rows: Iterable[Mapping], domains: Iterable[str], max_pairs_per_domain: int | None,
                validation_share: float, seed: int) -> list[dict]:
    """Pairs from the task rows of ``domains``, at most ``max_pairs_per_domain`` each (a seeded
    sample), each assigned to train or validation by a stable hash of its source row."""
    if not 0.0 < validation_share < 1.0:
        raise ValueError(f"validation_share must be in (0, 1), got {validation_share}")
    wanted = set(domains)
    by_domain: dict[str, list[dict]] = {}
    for row in rows:
        if row["domain"] not in wanted:
            continue
        for n, pair in enumerate(world.preference_pairs(dict(row))):
            by_domain.setdefault(row["domain"], []).append(
                {"id": f"pref-{row['id']}-{n}", "domain": row["domain"], "source_id": row["id"], **pair})
    missing = sorted(wanted - set(by_domain))
    if missing:
        raise ValueError(f"no preference pairs from domains {missing}: the prompts hold none of their rows")
    out = []
    for domain, pairs in sorted(by_domain.items()):
        if max_pairs_per_domain and len(pairs) > max_pairs_per_domain:
            pairs = random.Random(f"{seed}:{domain}").sample(pairs, max_pairs_per_domain)
        out += [{**p, "split": _split_of(p["source_id"], validation_share, seed)} for p in pairs]
    check_pairs(out, "preference_pairs")
    log.info("preference pairs: %s", dict(Counter((p["domain"], p["split"]) for p in out)))
    return out
