"""Prompt curation: quarantine of malformed rows, decontamination against the benchmarks, and
near-duplicate removal, each removal recorded with its reason (the data card counts them).

A task is compared on its *item text*: the fields that define it (``item_fields`` per domain),
joined. In the paper the item is a problem statement and the rule is a 9-gram overlap. The
embedded world is templated: any 9 consecutive words of a math or code prompt are template shared
by hundreds of distinct tasks (at n = 9, 91% of its training code prompts "overlap" the benchmark,
see the data card), so the ``base`` profile compares whole items (every field that defines a task,
n above the longest item: each benchmark item then matches only as a whole word sequence), and the
world plants real leaks — benchmark items copied into training splits under case, punctuation and
spacing noise — and near-duplicate copies of training tasks, which these steps must remove, and
nothing else (``plant_contamination``).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable

from nemotron_cascade.data import decontamination
from nemotron_cascade.data.dedup import DedupConfig, find_near_duplicates

log = logging.getLogger(__name__)

ERROR_KEY = "_error"  # a raw row the dataset could not read or validate (see JsonlDataset(on_error=...))


def item_text(row: dict, fields: Iterable[str]) -> str:
    """The text a task is compared on: its defining fields, strings as they are, others as JSON."""
    parts = []
    for f in fields:
        if f not in row:
            raise KeyError(f"task {row.get('id', '?')}: item field {f!r} missing")
        v = row[f]
        parts.append(v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False))
    return "\n".join(parts)


def removal(row: dict, step: str, reason: str) -> dict:
    """One line of the removal log."""
    return {"id": str(row.get("id", "")), "domain": str(row.get("domain", "")), "split": str(row.get("split", "")),
            "step": step, "reason": reason, "planted": row.get("planted")}


def quarantine(rows: list[dict], source: str) -> tuple[list[dict], list[dict]]:
    """Split a raw dataset into good rows and quarantine records (file, row, reason, text)."""
    good, bad = [], []
    for row in rows:
        if ERROR_KEY in row:
            bad.append({"source": source, "file": row.get("_file", ""), "row": row.get("_row", -1),
                        "reason": row[ERROR_KEY], "text": row.get("_text", "")})
        else:
            good.append(row)
    return good, bad


def decontaminate(rows: list[dict], benchmark_texts: list[str], item_fields: dict,
                  n: int) -> tuple[list[dict], list[dict]]:
    """Training rows that share no ``n``-word sequence with any benchmark text; removal records."""
    texts = (item_text(r, fields_of(item_fields, r["domain"])) for r in rows)
    flags = decontamination.find_contaminated(list(texts), benchmark_texts, n=n)
    kept = [r for r, f in zip(rows, flags) if not f]
    removed = [removal(r, "decontamination", f"shares a {n}-word sequence with a benchmark item")
               for r, f in zip(rows, flags) if f]
    return kept, removed


def deduplicate(rows: list[dict], item_fields: dict, config: DedupConfig) -> tuple[list[dict], list[dict]]:
    """Rows with near duplicates (MinHash LSH, per domain) removed: the first of each cluster stays."""
    kept, removed = [], []
    for domain in sorted({r["domain"] for r in rows}):
        part = [r for r in rows if r["domain"] == domain]
        dup_of = find_near_duplicates((item_text(r, fields_of(item_fields, domain)) for r in part), config)
        for r, j in zip(part, dup_of):
            if j is None:
                kept.append(r)
            else:
                removed.append(removal(r, "near_duplicate",
                                       f"near duplicate of {part[j]['id']} (Jaccard >= {config.threshold})"))
    return kept, removed


def fields_of(item_fields: dict, domain: str) -> list[str]:
    """The item fields of a domain (``default`` for domains not named)."""
    return list(item_fields.get(domain, item_fields.get("default", ["prompt"])))


def curate(raw: dict[str, list[dict]], item_fields: dict, n: int, dedup: DedupConfig,
           external_texts: Iterable[str] = (),
           diagnostic_n: int | None = None) -> tuple[list[dict], list[dict], list[dict], dict]:
    """Quarantine, decontaminate and deduplicate the raw tasks of every domain.

    Training rows (splits other than ``bench``) are checked against the benchmark items (this
    world's held-out split) and ``external_texts``. Returns the curated tasks (training rows kept,
    then the benchmark rows), the removal log, the quarantine records and the per-domain counts
    of each step for the data card (plus ``planted``, ``empty_domains`` and, with ``diagnostic_n``,
    how many kept prompts share a ``diagnostic_n``-word sequence with a benchmark prompt).

    A domain is never silently empty: an empty raw file (zero rows is legitimate, e.g. the gpu
    profile has no ``general`` source) is logged and listed under ``empty_domains``; a non-empty
    one whose every row is quarantined raises, naming the file and the first reason (a schema drift
    or a broken export, not data to train on).
    """
    good, quarantined, empty = [], [], []
    for domain in sorted(raw):
        rows, bad = quarantine(raw[domain], f"raw.{domain}")
        for q in bad:
            log.warning("quarantined %s row %s: %s", q["file"], q["row"], q["reason"])
        if bad and not rows:
            raise ValueError(f"raw.{domain}: all {len(bad)} rows of {bad[0]['file']} were quarantined "
                             f"(row {bad[0]['row']}: {bad[0]['reason']}); see the quarantine dataset")
        if not raw[domain]:
            empty.append(domain)
            log.warning("raw.%s has no rows: the %s domain contributes no tasks", domain, domain)
        good += rows
        quarantined += bad
    bench = [r for r in good if r["split"] == "bench"]
    train = [r for r in good if r["split"] != "bench"]
    bench_texts = [item_text(r, fields_of(item_fields, r["domain"])) for r in bench] + list(external_texts)
    clean, removed = decontaminate(train, bench_texts, item_fields, n)
    kept, dups = deduplicate(clean, item_fields, dedup)
    by_domain = lambda rows: dict(Counter(r["domain"] for r in rows))  # noqa: E731
    counts = {"raw_train": by_domain(train), "decontaminated": by_domain(clean), "deduplicated": by_domain(kept),
              "planted": dict(Counter(r["planted"] for r in good if r.get("planted")))}
    if empty:
        counts["empty_domains"] = empty
    if diagnostic_n:
        flags = decontamination.find_contaminated([r["prompt"] for r in kept], [r["prompt"] for r in bench],
                                                  n=int(diagnostic_n))
        counts["diagnostic"] = {"n": int(diagnostic_n), "overlap": by_domain(r for r, f in zip(kept, flags) if f),
                                "of": by_domain(kept)}
    return kept + bench, removed + dups, quarantined, counts


# -- planted contamination (the embedded world's test of the steps above) --------------------------

_WORD = re.compile(r"\S+")


def format_noise(text: str, rng: random.Random) -> str:
    """The same words under case, punctuation and spacing noise (``normalise`` undoes all of it)."""
    def noisy(m: re.Match) -> str:
        w, roll = m.group(0), rng.random()
        if roll < 0.25:
            w = w.upper()
        elif roll < 0.4:
            w = w.capitalize()
        if rng.random() < 0.2:
            w += rng.choice([",", ";", " --", "!", " ..."])
        return w
    out = _WORD.sub(noisy, text)
    return re.sub(" ", lambda _: rng.choice([" ", " ", "  ", "\t", " \n"]), out)


def plant_contamination(rows: list[dict], leaks: int, near_duplicates: int, seed: int) -> list[dict]:
    """``rows`` of one domain plus planted rows: ``leaks`` benchmark items copied into the sft/rl
    splits and ``near_duplicates`` copies of training tasks, their prompts under format noise, marked
    ``planted`` (``benchmark_leak`` / ``near_duplicate``) and ``planted_from`` (the source id)."""
    rng = random.Random(seed)
    bench = [r for r in rows if r["split"] == "bench"]
    train = [r for r in rows if r["split"] != "bench"]
    planted = []
    for src in rng.sample(bench, min(leaks, len(bench))):
        planted.append({**src, "id": f"{src['id']}-leak", "split": rng.choice(["sft", "rl"]),
                        "prompt": format_noise(src["prompt"], rng), "planted": "benchmark_leak",
                        "planted_from": src["id"]})
    for src in rng.sample(train, min(near_duplicates, len(train))):
        planted.append({**src, "id": f"{src['id']}-dup", "prompt": format_noise(src["prompt"], rng),
                        "planted": "near_duplicate", "planted_from": src["id"]})
    # planted rows go at random places, but after their source for duplicates (the first copy stays)
    out = list(rows)
    for p in planted:
        lo = 0 if p["planted"] != "near_duplicate" else \
            next(i for i, r in enumerate(out) if r["id"] == p["planted_from"]) + 1
        out.insert(rng.randint(lo, len(out)), p)
    return out
