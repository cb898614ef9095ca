"""Preference pairs for the reward model: built from task rows, checked, split train/validation.

A pair is ``{"id", "domain", "source_id", "prompt", "chosen", "rejected", "flaw", "split"}``. The embedded
world gives pairs for general chat and instruction following (:func:`world.preference_pairs`). A row of
an HF source (its ``source`` names one) gives only the pair it carries: a HelpSteer3 row its human
(chosen, rejected) (``world.general.source_pairs``), an SFT-only row (empty ``rejected``) or a row of
another domain (no responses: IF prompts) none — the world's generators never run on real rows.

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
from nemotron_cascade.data.world.general import is_source_row, source_pairs

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


def row_pairs(row: dict) -> list[dict]:
    """The preference pairs of one task row: the world's for a world row, the row's own for a
    source row (see the module docstring)."""
    if is_source_row(row):
        return source_pairs(row)
    return world.preference_pairs(row)


def build_pairs(rows: Iterable[Mapping], domains: Iterable[str], max_pairs_per_domain: int | None,
                validation_share: float, seed: int) -> list[dict]:
    """Pairs from the task rows of ``domains``, at most ``max_pairs_per_domain`` each (a seeded
    sample), each assigned to train or validation by a stable hash of its source row."""
    if not 0.0 < validation_share < 1.0:
        raise ValueError(f"validation_share must be in (0, 1), got {validation_share}")
    wanted = set(domains)
    by_domain: dict[str, list[dict]] = {}
    seen: Counter = Counter()
    for row in rows:
        if row["domain"] not in wanted:
            continue
        seen[row["domain"]] += 1
        for n, pair in enumerate(row_pairs(dict(row))):
            by_domain.setdefault(row["domain"], []).append(
                {"id": f"pref-{row['id']}-{n}", "domain": row["domain"], "source_id": row["id"], **pair})
    missing = sorted(wanted - set(by_domain))
    if missing:
        why = "; ".join(f"{d}: {seen[d]} rows, none gives a pair (source rows give only the (chosen, rejected) "
                        "they carry)" if seen[d] else f"{d}: the prompts hold none of its rows" for d in missing)
        raise ValueError(f"no preference pairs from domains {missing} ({why}); set params preferences.domains "
                         "to domains that give pairs")
    out = []
    for domain, pairs in sorted(by_domain.items()):
        if max_pairs_per_domain and len(pairs) > max_pairs_per_domain:
            pairs = random.Random(f"{seed}:{domain}").sample(pairs, max_pairs_per_domain)
        out += [{**p, "split": _split_of(p["source_id"], validation_share, seed)} for p in pairs]
    check_pairs(out, "preference_pairs")
    log.info("preference pairs: %s", dict(Counter((p["domain"], p["split"]) for p in out)))
    return out
