"""Nodes of the data-curation pipeline (thin wrappers over ``nemotron_cascade.data``)."""

from __future__ import annotations

import logging
from collections import Counter

from nemotron_cascade import tracking
from nemotron_cascade.data import card, curation, filters, localisation, preferences
from nemotron_cascade.data.decontamination import find_contaminated
from nemotron_cascade.data.dedup import DedupConfig
from nemotron_cascade.data import sft as sft_data
from nemotron_cascade.data import teacher as teacher_data
from nemotron_cascade.data import world
from nemotron_cascade.generation.teachers import make_teacher

log = logging.getLogger(__name__)


def generate_world(seed: int, sizes: dict, plant: dict | None = None, **sources: list[dict]) -> dict[str, list[dict]]:
    """The raw tasks per domain: the embedded world's (``sizes[domain][split]`` tasks of each split,
    plus ``plant``: per domain ``leaks`` benchmark items copied into training splits and
    ``near_duplicates`` copies of training tasks, under format noise, for curation to remove), then
    the rows of ``source.<domain>`` (the gpu profile's HF datasets; empty in ``base``)."""
    unknown = sorted(set(sizes) - set(world.DOMAINS))
    if unknown:
        raise KeyError(f"params world.sizes names unknown domains {unknown}; known: {list(world.DOMAINS)}")
    plant = plant or {}
    out = {}
    for domain in world.DOMAINS:
        rows = []
        for split in world.SPLITS:
            rows += world.generate_tasks(domain, split, int(sizes.get(domain, {}).get(split, 0)), seed)
        rows = curation.plant_contamination(rows, int(plant.get("leaks", 0)), int(plant.get("near_duplicates", 0)),
                                            seed=int(plant.get("seed", 0)) + world.DOMAINS.index(domain))
        rows += list(sources.get(domain) or [])
        out[domain] = rows
        log.info("raw %-22s %s", domain, dict(Counter(r.get("split") for r in rows)))
    return out


def curate_tasks(item_fields: dict, decontamination: dict, dedup: dict, external_benchmarks: list[dict],
                 **raw: list[dict]) -> tuple[list[dict], list[dict], list[dict], dict]:
    """Quarantine malformed rows, remove training tasks that overlap a benchmark item (this world's
    held-out split and ``external_benchmarks``), then near duplicates. Returns the curated tasks,
    the removal log, the quarantine and the counts for the data card.

    A domain is never silently empty: an empty raw file (zero rows is legitimate, e.g. the gpu
    profile has no ``general`` source) is logged and listed under ``empty_domains`` (a note of the
    data card); a non-empty one whose every row is quarantined stops the run, naming the file and
    the first reason (a schema drift or a broken export, not data to train on)."""
    good, quarantined, empty = [], [], []
    for domain in sorted(raw):
        rows, bad = curation.quarantine(raw[domain], f"raw.{domain}")
        good += rows
        quarantined += bad
        for q in bad:
            log.warning("quarantined %s row %s: %s", q["file"], q["row"], q["reason"])
        if bad and not rows:
            raise ValueError(f"raw.{domain}: all {len(bad)} rows of {bad[0]['file']} were quarantined "
                             f"(row {bad[0]['row']}: {bad[0]['reason']}); see the quarantine dataset")
        if not raw[domain]:
            empty.append(domain)
            log.warning("raw.%s has no rows: the %s domain contributes no tasks", domain, domain)
    bench = [r for r in good if r["split"] == "bench"]
    train = [r for r in good if r["split"] != "bench"]
    bench_texts = [curation.item_text(r, curation.fields_of(item_fields, r["domain"])) for r in bench]
    bench_texts += [str(b["text"]) if isinstance(b, dict) else str(b) for b in external_benchmarks]
    n = int(decontamination["n"])
    clean, removed = curation.decontaminate(train, bench_texts, item_fields, n)
    kept, dups = curation.deduplicate(clean, item_fields, DedupConfig(**dedup))
    removed += dups
    stats = {"raw_train": train, "decontaminated": clean, "deduplicated": kept}
    diag_n = decontamination.get("diagnostic_n")
    if diag_n:
        flags = find_contaminated([r["prompt"] for r in kept], [r["prompt"] for r in bench], n=int(diag_n))
        overlap = Counter(r["domain"] for r, f in zip(kept, flags) if f)
        stats["diagnostic"] = {"n": int(diag_n), "overlap": dict(overlap), "of": dict(Counter(r["domain"] for r in kept))}
    log.info("curation: %d raw, %d quarantined, %d leaks removed, %d near duplicates removed, %d kept",
             len(good), len(quarantined), len(removed) - len(dups), len(dups), len(kept))
    tracking.log_metrics({"curation/quarantined": len(quarantined), "curation/decontaminated": len(removed) - len(dups),
                          "curation/near_duplicates": len(dups), "curation/kept": len(kept)})
    counts = {k: _counts(v) if isinstance(v, list) else v for k, v in stats.items()}
    counts["planted"] = dict(Counter(r["planted"] for r in good if r.get("planted")))
    if empty:
        counts["empty_domains"] = empty
    return kept + bench, removed, quarantined, counts


def _counts(rows: list[dict]) -> dict:
    return dict(Counter(r["domain"] for r in rows))


def localise_swe_tasks(rows: list[dict], top_k: int) -> list[dict]:
    """SWE tasks with ``context_files``: the top-k files of the repository for the issue (BM25 over
    the repository; the RL stage can put the policy's own guess first). Logs recall@k per split."""
    out = [{**row, "context_files": localisation.localise(row, top_k)} for row in rows if row["domain"] == "swe"]
    for split in sorted({r["split"] for r in out}):
        part = [r for r in out if r["split"] == split]
        recall = sum(r["file"] in r["context_files"] for r in part) / len(part)
        top1 = sum(r["file"] == r["context_files"][0] for r in part) / len(part)
        log.info("localisation %s: recall@%d %.3f, recall@1 %.3f (%d tasks)", split, top_k, recall, top1, len(part))
        tracking.log_metrics({f"localisation/{split}_recall_at_{top_k}": recall, f"localisation/{split}_recall_at_1": top1})
    return out


def split_tasks(tasks: list[dict], localised_swe: list[dict]) -> dict[str, list[dict]]:
    """Curated prompt sets by split: SFT prompts, RL prompts and the held-out benchmark (SWE tasks
    with their localised context)."""
    out = {"sft_prompts": [], "rl_prompts": [], "benchmark": []}
    rows = [r for r in tasks if r["domain"] != "swe"] + localised_swe
    for row in sorted(rows, key=lambda r: r["domain"]):
        out[{"sft": "sft_prompts", "rl": "rl_prompts", "bench": "benchmark"}[row["split"]]].append(row)
    return out


def generate_teacher_responses(prompts: list[dict], backend: str, thinking_share: dict, both_modes_share: dict,
                               seed: int, backends: dict | None = None, k: int = 1, batch_size: int = 64,
                               cache_dir: str | None = None) -> list[dict]:
    """Teacher responses for the SFT prompts, thinking and non-thinking per domain shares.

    ``backends[backend]`` are the teacher's options; ``k`` responses per request. With
    ``cache_dir`` a model teacher's answers are cached as they finish (a file per teacher, see
    ``data.teacher``), so a killed run resumes; the oracle is never cached.
    """
    options = dict((backends or {}).get(backend) or {})
    teacher = make_teacher(backend, **options)
    by_domain: dict[str, list[dict]] = {}
    for row in prompts:
        by_domain.setdefault(row["domain"], []).append(row)
    requests = []
    for domain, rows in sorted(by_domain.items()):
        requests += sft_data.teacher_requests(rows, float(thinking_share.get(domain, 1.0)),
                                              float(both_modes_share.get(domain, 0.0)), seed)
    cache = teacher_data.cache_path(cache_dir, backend, teacher.identity, int(k)) \
        if cache_dir and teacher.cacheable else None
    responses = teacher_data.generate_responses([r for r, _ in requests], [m for _, m in requests], teacher,
                                                int(k), cache, int(batch_size))
    samples = sft_data.samples_from_responses(requests, responses)
    log.info("teacher samples (%s, k=%d): %s", backend, int(k), dict(Counter(s["domain"] for s in samples)))
    return samples


def build_sft_blend(samples: list[dict], weights: dict, max_response_chars: int | None,
                    multi_turn_share: float, seed: int) -> list[dict]:
    """One SFT stage's blend: sources filtered by response length, upsampled, plus multi-turn."""
    sources: dict[str, list[dict]] = {}
    for s in samples:
        if max_response_chars is None or len(s["messages"][-1]["content"]) <= max_response_chars:
            sources.setdefault(s["domain"], []).append(s)
    blend = sft_data.build_blend(sources, {k: float(v) for k, v in weights.items()}, seed)
    blend += sft_data.multi_turn(blend, multi_turn_share, seed)
    log.info("blend: %d samples %s", len(blend), dict(Counter(s["domain"] for s in blend)))
    return blend


def build_preference_pairs(prompts: list[dict], domains: list[str], max_pairs_per_domain: int | None,
                           validation_share: float, seed: int) -> list[dict]:
    """Preference pairs for the reward model from the SFT prompts of ``domains`` (train/validation)."""
    return preferences.build_pairs(prompts, domains, max_pairs_per_domain, validation_share, seed)


def plant_teacher_flaws(samples: list[dict], per_kind: int, seed: int, max_chars: int | None) -> list[dict]:
    """Teacher samples plus ``per_kind`` planted broken copies of each flaw kind (0: unchanged)."""
    return filters.plant_flaws(samples, int(per_kind), int(seed), max_chars)


def filter_teacher_samples(samples: list[dict], sft_prompts: list[dict], config: dict,
                           backends: dict | None = None) -> tuple[list[dict], list[dict], dict]:
    """Samples that pass every filter (``data.filters``), the removal log and what was checked."""
    cfg = filters.FilterConfig(**config)
    second = None
    if cfg.cross_check["backend"] != "none":
        name = cfg.cross_check["backend"]
        teacher = make_teacher(name, **dict((backends or {}).get(name) or {}))
        second = lambda rows, modes: [r[0] for r in teacher.respond(rows, modes, 1)]  # noqa: E731
    tasks = {r["id"]: r for r in sft_prompts}
    kept, removed, checked = filters.filter_samples(samples, tasks, cfg, second)
    by = Counter((r["filter"], r["domain"]) for r in removed)
    for (f, d), n in sorted(by.items()):
        log.info("filter %-12s %-22s removed %d", f, d, n)
    tracking.log_metrics({f"filters/{f}": float(n) for f, n in Counter(r["filter"] for r in removed).items()})
    return kept, removed, {"correctness_checked": checked}


def build_data_card(raw_stats: dict, curated: list[dict], removed_tasks: list[dict], quarantined: list[dict],
                    teacher_samples: list[dict], filtered: list[dict], removed_samples: list[dict],
                    filter_stats: dict, blend_stage1: list[dict], blend_stage2: list[dict],
                    tokenizer: str | None = None):
    """The data card (Markdown, figure, per-step table) and its metrics in MLflow. Tokens are
    counted with ``tokenizer`` (a tokenizer path or hub name: the gpu profile's base model) or, when
    it is None, as whitespace words (the embedded world's tokenizer is trained later, on these blends)."""
    # task counts through quarantine, decontamination and dedup (training splits), then samples
    stages = {"raw": raw_stats["raw_train"], "decontaminated": raw_stats["decontaminated"],
              "deduplicated": [r for r in curated if r["split"] != "bench"],
              "teacher": teacher_samples, "filtered": filtered, "blend_stage1": blend_stage1, "blend_stage2": blend_stage2}
    removed = removed_tasks + removed_samples
    planted = Counter(r["planted"] for r in teacher_samples if r.get("planted"))
    planted |= Counter({k: v for k, v in raw_stats.get("planted", {}).items()})
    extra = {"planted": card.planted_check(removed, dict(planted)) if planted else None, "notes": {}}
    if "diagnostic" in raw_stats:
        d = raw_stats["diagnostic"]
        extra["notes"][f"Template overlap at n = {d['n']} (diagnostic, nothing removed)"] = (
            f"Share of kept training prompts that share a {d['n']}-word sequence with a benchmark prompt: "
            + ", ".join(f"{k} {v}/{d['of'].get(k, 0)}" for k, v in sorted(d["overlap"].items()))
            + ". These are the world's templates, not leaks: the curation compares whole items (see data/curation.py).")
    if raw_stats.get("empty_domains"):
        extra["notes"]["Empty domains"] = (", ".join(raw_stats["empty_domains"])
                                           + ": the raw file had no rows, so these domains contribute no tasks.")
    checked = filter_stats.get("correctness_checked", {})
    if checked:
        extra["notes"]["Correctness checks"] = ", ".join(f"{d}: {n} samples checked" for d, n in sorted(checked.items()))
    count, unit = (None, "words") if not tokenizer else (card.token_counter(tokenizer), f"{tokenizer} tokens")
    markdown, metrics, figure, table = card.build_card(stages, removed, quarantined, extra, count, unit)
    tracking.log_metrics(metrics)
    return markdown, figure, table
