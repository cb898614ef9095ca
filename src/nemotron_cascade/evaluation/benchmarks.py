"""Evaluate one checkpoint on every domain's held-out benchmark.

Each domain is generated greedily in the mode its config names (thinking or not) and scored by the
same verifier the RL stages use (:mod:`nemotron_cascade.rewards.registry`). ``preference`` is the
embedded world's ground-truth answer quality on the general-chat benchmark (true, relevant,
concise, not repetitive); a reward model's score joins it with the RLHF issue. ``response_length``
is the mean number of generated tokens over all benchmarks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from statistics import mean

from nemotron_cascade.data import world
from nemotron_cascade.generation.base import SamplingParams
from nemotron_cascade.rewards.registry import get_reward

log = logging.getLogger(__name__)

# benchmark column -> (domain of the rows, reward name or None for the world's preference quality)
METRICS = {
    "math": ("math", "math"),
    "code": ("code", "code"),
    "science": ("science", "science"),
    "instruction_following": ("instruction_following", "instruction_following"),
    "tool_calling": ("tool_calling", "tool_calling"),
    "swe": ("swe", "swe"),
    "preference": ("general", None),
}
# columns whose reward is graded also report the share of items solved outright (reward 1): for SWE
# the patch equal to the gold one after normalisation, the nearest thing to SWE-bench's "resolved"
# (the lexical judge gives a wrong but similar fix 0.8-0.9, which hides fixes in the mean)
SOLVED = {"swe": "swe_resolved"}


@dataclass(frozen=True)
class EvalConfig:
    """Which mode each domain is evaluated in, and generation limits."""

    thinking: dict = field(default_factory=lambda: {
        "math": True, "code": True, "science": True, "instruction_following": False,
        "general": False, "tool_calling": True, "swe": True})
    max_new_tokens: int = 160
    max_items_per_domain: int = 200
    batch_size: int = 64
    # test-time scaling per benchmark column: {metric: {k, temperature, max_items, headline}} adds
    # ``<metric>_avg_of_<k>``, ``<metric>_best_of_<k>`` (the judge's pick) and ``<metric>_max_of_<k>``;
    # with ``headline: true`` the column itself is avg@k and the greedy score moves to ``<metric>_greedy``
    sampled: dict = field(default_factory=dict)
    # where the checkpoint generates (training/placement.py: auto | cpu | cuda | cuda:N)
    device: str = "auto"
    # the generation engine (generation/engines.py): hf, or vllm with VLLMGenerator.from_pretrained's
    # keyword arguments in `vllm` (the gpu profile: the RL stages' rollout engine)
    engine: str = "hf"
    vllm: dict | None = None

    def __post_init__(self):
        from nemotron_cascade.generation.engines import ENGINES
        from nemotron_cascade.training.placement import check_device

        check_device(self.device, "params evaluation.device")
        if self.engine not in ENGINES:
            raise ValueError(f"params evaluation.engine must be one of {ENGINES}, got {self.engine!r}")


def prompts_for(rows: list[dict], thinking: bool, tokenizer) -> list[str]:
    """Render the generation prompts of benchmark rows."""
    return [world.render_prompt(row, thinking) for row in rows]


def score(metric: str, responses: list[str], rows: list[dict]) -> list[float]:
    """Per-item scores of one benchmark column."""
    _, reward = METRICS[metric]
    if reward is None:
        return [world.preference_quality(r, row["topic"]) for r, row in zip(responses, rows)]
    return get_reward(reward)(responses, rows)


def evaluate(generator, benchmark: list[dict], cfg: EvalConfig) -> tuple[dict, list[dict]]:
    """Scores per benchmark column (fractions in [0, 1]) and the per-item records."""
    by_domain: dict[str, list[dict]] = {}
    for row in benchmark:
        by_domain.setdefault(row["domain"], []).append(row)
    metrics, records, lengths = {}, [], []
    params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    for metric, (domain, _) in METRICS.items():
        rows = by_domain.get(domain, [])[: cfg.max_items_per_domain]
        if not rows:
            log.warning("benchmark has no %s rows: metric %s skipped", domain, metric)
            continue
        thinking = bool(cfg.thinking.get(domain, True))
        t0 = time.perf_counter()
        completions = [c[0] for c in generator.generate(prompts_for(rows, thinking, generator.tokenizer), params)]
        responses = [c.text for c in completions]
        scores = score(metric, responses, rows)
        metrics[metric] = round(mean(scores), 4)
        if metric in SOLVED:
            metrics[SOLVED[metric]] = round(mean(float(x >= 1.0) for x in scores), 4)
        lengths += [len(c.token_ids) for c in completions]
        records += [{"metric": metric, "id": row["id"], "thinking": thinking, "score": s, "response": r}
                    for row, r, s in zip(rows, responses, scores)]
        log.info("eval %-22s %.3f (%d items, %.1f s)", metric, metrics[metric], len(rows), time.perf_counter() - t0)
    metrics["response_length"] = round(mean(lengths), 2) if lengths else 0.0
    for metric, spec in cfg.sampled.items():
        sampled = sampled_metrics(generator, by_domain, metric, dict(spec), cfg)
        metrics.update(sampled)
        avg = f"{metric}_avg_of_{_k(spec)}"
        if spec.get("headline") and avg in sampled and metric in metrics:
            # the column reports avg@k (the paper's SWE number); the greedy score stays beside it
            metrics[f"{metric}_greedy"], metrics[metric] = metrics[metric], sampled[avg]
    return metrics, records


def _patch_judge():
    """best@k's judge of patches: the lexical patch judge's score against the gold patch."""
    from nemotron_cascade.evaluation.sampling import patch_judge_fn
    from nemotron_cascade.rewards.swe import LexicalJudge

    return patch_judge_fn(LexicalJudge())


# best@k judges by name (a domain's registry entry names its ``judge``; none: its own reward)
JUDGES = {"patch": _patch_judge}


def _k(spec: dict) -> int:
    """Samples per problem of a ``sampled`` spec (4 when unset)."""
    return int(spec.get("k", 4))


def sampled_metrics(generator, by_domain: dict, metric: str, spec: dict, cfg: EvalConfig) -> dict:
    """avg@k, best@k and max@k of one benchmark column (the paper's test-time scaling for SWE).

    best@k picks, per problem, the sample the judge scores highest: for SWE the lexical patch judge
    against the gold patch (``rewards.swe.LexicalJudge``); other columns pick by their own reward.
    Which judge a domain uses is its registry entry's ``judge`` (:data:`JUDGES`).
    """
    from nemotron_cascade.evaluation.sampling import sample_scores

    if metric not in METRICS or METRICS[metric][1] is None:
        raise KeyError(f"params evaluation.sampled: {metric!r} is not a verifiable benchmark column; "
                       f"choose from {[m for m, (_, r) in METRICS.items() if r]}")
    domain, reward = METRICS[metric]
    k = _k(spec)
    rows = by_domain.get(domain, [])[: int(spec.get("max_items", cfg.max_items_per_domain))]
    if not rows:
        return {}
    reward_fn = get_reward(reward)
    judge = world.get_domain(domain).judge
    judge_fn = JUDGES[judge]() if judge is not None else reward_fn
    t0 = time.perf_counter()
    out = sample_scores(generator, rows, k, float(spec.get("temperature", 1.0)), cfg.max_new_tokens, reward_fn,
                        judge_fn, thinking=bool(cfg.thinking.get(domain, True)), seed=int(spec.get("seed", 0)))
    result = {f"{metric}_{name}_of_{k}": round(out[f"{name}@k"], 4) for name in ("avg", "best", "max")}
    log.info("eval %s sampled: %s (%.1f s)", metric, result, time.perf_counter() - t0)
    return result
