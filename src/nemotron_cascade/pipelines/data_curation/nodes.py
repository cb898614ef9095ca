"""Nodes of the data-curation pipeline (thin wrappers over ``nemotron_cascade.data``)."""

from __future__ import annotations

import logging
from collections import Counter

from nemotron_cascade import tracking
from nemotron_cascade.data import localisation, preferences
from nemotron_cascade.data import sft as sft_data
from nemotron_cascade.data import world
from nemotron_cascade.generation.oracle import make_teacher

log = logging.getLogger(__name__)


def generate_world(seed: int, sizes: dict) -> dict[str, list[dict]]:
    """The embedded world's raw tasks per domain: ``sizes[domain][split]`` tasks of each split."""
    unknown = sorted(set(sizes) - set(world.DOMAINS))
    if unknown:
        raise KeyError(f"params world.sizes names unknown domains {unknown}; known: {list(world.DOMAINS)}")
    out = {}
    for domain in world.DOMAINS:
        rows = []
        for split in world.SPLITS:
            rows += world.generate_tasks(domain, split, int(sizes.get(domain, {}).get(split, 0)), seed)
        out[domain] = rows
        log.info("world %-22s %s", domain, dict(Counter(r["split"] for r in rows)))
    return out


def localise_swe_tasks(rows: list[dict], top_k: int) -> list[dict]:
    """SWE tasks with ``context_files``: the top-k files of the repository for the issue (BM25 over
    the repository; the RL stage can put the policy's own guess first). Logs recall@k per split."""
    out = [{**row, "context_files": localisation.localise(row, top_k)} for row in rows]
    for split in sorted({r["split"] for r in out}):
        part = [r for r in out if r["split"] == split]
        recall = sum(r["file"] in r["context_files"] for r in part) / len(part)
        top1 = sum(r["file"] == r["context_files"][0] for r in part) / len(part)
        log.info("localisation %s: recall@%d %.3f, recall@1 %.3f (%d tasks)", split, top_k, recall, top1, len(part))
        tracking.log_metrics({f"localisation/{split}_recall_at_{top_k}": recall, f"localisation/{split}_recall_at_1": top1})
    return out


def split_tasks(**raw: list[dict]) -> dict[str, list[dict]]:
    """Curated prompt sets by split: SFT prompts, RL prompts and the held-out benchmark."""
    out = {"sft_prompts": [], "rl_prompts": [], "benchmark": []}
    for domain in sorted(raw):
        for row in raw[domain]:
            out[{"sft": "sft_prompts", "rl": "rl_prompts", "bench": "benchmark"}[row["split"]]].append(row)
    return out


def generate_teacher_responses(prompts: list[dict], backend: str, thinking_share: dict,
                               both_modes_share: dict, seed: int, options: dict | None = None) -> list[dict]:
    """Teacher responses for the SFT prompts, thinking and non-thinking per domain shares."""
    teacher = make_teacher(backend, **(options or {}))
    by_domain: dict[str, list[dict]] = {}
    for row in prompts:
        by_domain.setdefault(row["domain"], []).append(row)
    samples = []
    for domain, rows in sorted(by_domain.items()):
        samples += sft_data.teacher_samples(rows, float(thinking_share.get(domain, 1.0)),
                                            float(both_modes_share.get(domain, 0.0)), seed, teacher)
    log.info("teacher samples: %s", dict(Counter(s["domain"] for s in samples)))
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
