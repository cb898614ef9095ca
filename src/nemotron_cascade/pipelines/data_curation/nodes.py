"""Nodes of the data-curation pipeline (thin wrappers over ``nemotron_cascade.data``)."""

from __future__ import annotations

import logging
from collections import Counter

from nemotron_cascade import tracking
from nemotron_cascade.config import config_from_params
from nemotron_cascade.data import card, curation, filters, preferences, swe_repos, world
from nemotron_cascade.data import sft as sft_data
from nemotron_cascade.data import teacher as teacher_data
from nemotron_cascade.data.dedup import DedupConfig
from nemotron_cascade.generation.teachers import teacher_from_config

log = logging.getLogger(__name__)


def generate_world(seed: int, sizes: dict, plant: dict | None = None, **sources: list[dict]) -> dict[str, list[dict]]:
    """The raw tasks per domain: the embedded world's ``sizes[domain][split]`` tasks of each split,
    plus ``plant`` (per domain ``leaks`` benchmark items copied into training splits and
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


def curate_tasks(item_fields: dict, decontamination: dict, dedup: dict, external_benchmarks: list,
                 **raw: list[dict]) -> tuple[list[dict], list[dict], list[dict], dict]:
    """Quarantine malformed rows, remove training tasks that overlap a benchmark item (this world's
    held-out split and ``external_benchmarks``), then near duplicates (``data.curation.curate``).
    Returns the curated tasks, the removal log, the quarantine and the counts for the data card."""
    external = [str(b["text"]) if isinstance(b, dict) else str(b) for b in external_benchmarks]
    curated, removed, quarantined, counts = curation.curate(
        raw, item_fields, int(decontamination["n"]), DedupConfig(**dedup), external,
        decontamination.get("diagnostic_n"))
    steps = Counter(r["step"] for r in removed)
    log.info("curation: %d quarantined, %d leaks removed, %d near duplicates removed, %d training tasks kept",
             len(quarantined), steps["decontamination"], steps["near_duplicate"], sum(counts["deduplicated"].values()))
    tracking.log_metrics({"curation/quarantined": len(quarantined), "curation/decontaminated": steps["decontamination"],
                          "curation/near_duplicates": steps["near_duplicate"],
                          "curation/kept": sum(counts["deduplicated"].values())})
    return curated, removed, quarantined, counts


def _localised(row: dict) -> bool:
    """Whether the row's domain shows localised context files in its prompts (the world's registry)."""
    return world.get_domain(row["domain"]).localised


def localise_swe_tasks(rows: list[dict], top_k: int, repositories: dict | None = None) -> list[dict]:
    """Tasks of the localised domains (SWE) with ``context_files``: the top-k files of the repository
    for the issue (BM25 over the repository; the RL stage interleaves the policy's own guess with
    it). Rows whose ``repo`` is empty (real sources) are hydrated first from the git repositories
    of ``repositories`` (``params:swe_repositories``, ``data.swe_repos``). Logs recall@k per split."""
    source = config_from_params(swe_repos.RepoSourceConfig, repositories, "params:swe_repositories")
    out = swe_repos.localise_rows([row for row in rows if _localised(row)], top_k, source)
    for split in sorted({r["split"] for r in out}):
        part = [r for r in out if r["split"] == split]
        recall = sum(r["file"] in r["context_files"] for r in part) / len(part)
        top1 = sum(r["file"] == r["context_files"][0] for r in part) / len(part)
        log.info("localisation %s: recall@%d %.3f, recall@1 %.3f (%d tasks)", split, top_k, recall, top1, len(part))
        tracking.log_metrics({f"localisation/{split}_recall_at_{top_k}": recall,
                              f"localisation/{split}_recall_at_1": top1})
    return out


def split_tasks(tasks: list[dict], localised_swe: list[dict]) -> dict[str, list[dict]]:
    """Curated prompt sets by split: SFT prompts, RL prompts and the held-out benchmark (the tasks of
    localised domains, SWE, with their localised context)."""
    out = {"sft_prompts": [], "rl_prompts": [], "benchmark": []}
    rows = [r for r in tasks if not _localised(r)] + localised_swe
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
    teacher = _teacher(backend, backends)
    requests = sft_data.teacher_requests_by_domain(prompts, thinking_share, both_modes_share, seed)
    requests = teacher.plan(requests)  # the dataset teacher moves a request to the mode its source answers in
    cache = teacher_data.cache_path(cache_dir, backend, teacher.identity, int(k)) \
        if cache_dir and teacher.cacheable else None
    responses = teacher_data.generate_responses([r for r, _ in requests], [m for _, m in requests], teacher,
                                                int(k), cache, int(batch_size))
    samples = sft_data.samples_from_responses(requests, responses)
    log.info("teacher samples (%s, k=%d): %s", backend, int(k), dict(Counter(s["domain"] for s in samples)))
    return samples


def _teacher(backend: str, backends: dict | None):
    """The teacher ``backend`` built with its options from ``params:teacher.backends`` (a block may name
    another block's kind, and the dataset teacher's fallbacks are built by name)."""
    return teacher_from_config(backend, backends)


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
        teacher = _teacher(cfg.cross_check["backend"], backends)
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
              "teacher": teacher_samples, "filtered": filtered,
              "blend_stage1": blend_stage1, "blend_stage2": blend_stage2}
    removed = removed_tasks + removed_samples
    planted = Counter(r["planted"] for r in teacher_samples if r.get("planted")) + Counter(raw_stats.get("planted", {}))
    extra = {"planted": card.planted_check(removed, dict(planted)) if planted else None,
             "notes": card.curation_notes(raw_stats, filter_stats)}
    count, unit = (None, "words") if not tokenizer else (card.token_counter(tokenizer), f"{tokenizer} tokens")
    markdown, metrics, figure, table = card.build_card(stages, removed, quarantined, extra, count, unit)
    tracking.log_metrics(metrics)
    return markdown, figure, table
