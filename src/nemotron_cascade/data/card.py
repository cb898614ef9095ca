"""The data card: what each curation step kept and removed, per domain and source.

``build_card`` takes the counts the curation nodes record (``stages``: step name → rows of that step)
and the removal logs, and returns a table (one row per domain, source and step, with rows, words
and characters), a Markdown report, flat metrics for MLflow and a figure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable


def text_of(row: dict) -> str:
    """The text a row contributes to training: a sample's messages, or a task's prompt."""
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"])
    return str(row.get("prompt", ""))


def token_counter(name_or_path: str) -> Callable[[str], int]:
    """Token count of a text under a real tokenizer (batched calls are not needed at card scale)."""
    from nemotron_cascade.models import load_tokenizer

    tok = load_tokenizer(name_or_path)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def step_table(stages: dict[str, list[dict] | dict[str, int]],
               count_tokens: Callable[[str], int] = lambda t: len(t.split())) -> list[dict]:
    """Rows, tokens and characters per (step, domain, source)."""
    table = []
    for step, rows in stages.items():
        if isinstance(rows, dict):  # counts only (domain -> rows)
            table += [{"step": step, "domain": d, "source": "world", "rows": int(n), "tokens": None, "chars": None}
                      for d, n in sorted(rows.items())]
            continue
        acc: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in rows:
            text = text_of(r)
            a = acc[(r.get("domain", "?"), r.get("source", "world"))]
            a[0] += 1
            a[1] += count_tokens(text)
            a[2] += len(text)
        table += [{"step": step, "domain": d, "source": s, "rows": n, "tokens": t, "chars": c}
                  for (d, s), (n, t, c) in sorted(acc.items())]
    return table


def planted_check(removed: list[dict], planted: dict[str, int]) -> dict:
    """Planted items per kind and how many a step removed; removals of items nobody planted."""
    caught = Counter(r["planted"] for r in removed if r.get("planted"))
    return {"planted": dict(planted), "caught": {k: caught.get(k, 0) for k in planted},
            "natural": dict(Counter(f"{r['step']}:{r.get('filter', r['step'])}"
                                    for r in removed if not r.get("planted")))}


def curation_notes(raw_stats: dict, filter_stats: dict) -> dict[str, str]:
    """The card's notes on curation (``curation.curate``'s counts) and on the filters' checks."""
    notes = {}
    if "diagnostic" in raw_stats:
        d = raw_stats["diagnostic"]
        notes[f"Template overlap at n = {d['n']} (diagnostic, nothing removed)"] = (
            f"Share of kept training prompts that share a {d['n']}-word sequence with a benchmark prompt: "
            + ", ".join(f"{k} {v}/{d['of'].get(k, 0)}" for k, v in sorted(d["overlap"].items()))
            + ". These are the world's templates, not leaks: the curation compares whole items (see data/curation.py).")
    if raw_stats.get("empty_domains"):
        notes["Empty domains"] = (", ".join(raw_stats["empty_domains"])
                                  + ": the raw file had no rows, so these domains contribute no tasks.")
    checked = filter_stats.get("correctness_checked", {})
    if checked:
        notes["Correctness checks"] = ", ".join(f"{d}: {n} samples checked" for d, n in sorted(checked.items()))
    return notes


def build_card(stages: dict[str, list[dict]], removed: list[dict], quarantined: list[dict], extra: dict,
               count_tokens: Callable[[str], int] | None = None,
               token_unit: str = "words") -> tuple[str, dict, object, list[dict]]:
    """Markdown, metrics, figure and the step table of the data card."""
    table = step_table(stages, count_tokens or (lambda t: len(t.split())))
    steps = list(stages)
    domains = sorted({r["domain"] for r in table})
    by = {(r["step"], r["domain"]): r for r in _sum_sources(table)}
    lines = ["# Data card", "", f"Rows per domain after each curation step (tokens counted as {token_unit}).", "",
             "| domain | " + " | ".join(steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for d in domains:
        lines.append(f"| {d} | " + " | ".join(str(by.get((s, d), {}).get("rows", 0)) for s in steps) + " |")
    lines += ["", f"## Tokens ({token_unit}) per domain", "", "| domain | " + " | ".join(steps) + " |",
              "|---" * (len(steps) + 1) + "|"]
    for d in domains:
        lines.append(f"| {d} | " + " | ".join(_fmt(by.get((s, d), {}).get("tokens", 0)) for s in steps) + " |")
    sources = sorted({(r["domain"], r["source"]) for r in table if r["source"] != "world"})
    if sources:
        lines += ["", "## Rows per source", "", "| domain | source | " + " | ".join(steps) + " |",
                  "|---" * (len(steps) + 2) + "|"]
        src = {(r["step"], r["domain"], r["source"]): r["rows"] for r in table}
        for d, s in sources:
            lines.append(f"| {d} | {s} | " + " | ".join(str(src.get((st, d, s), 0)) for st in steps) + " |")
    reasons = Counter((r["step"], r.get("filter", r["step"]), r["domain"]) for r in removed)
    lines += ["", "## What was removed, and why", "", "| step | filter | domain | rows |", "|---|---|---|---|"]
    lines += [f"| {s} | {f} | {d} | {n} |" for (s, f, d), n in sorted(reasons.items())] or ["| — | — | — | 0 |"]
    examples = {}
    for r in removed:
        examples.setdefault((r["step"], r.get("filter", r["step"])), r)
    lines += ["", "One example per filter:", ""]
    lines += [f"- **{s} / {f}**: `{r['id']}` — {r['reason']}" for (s, f), r in sorted(examples.items())]
    lines += ["", f"## Quarantine: {len(quarantined)} malformed rows", ""]
    lines += [f"- {q['file']} row {q['row']}: {q['reason']}" for q in quarantined[:20]]
    if len(quarantined) > 20:
        lines.append(f"- … and {len(quarantined) - 20} more (dataset `quarantine`)")
    if extra.get("planted"):
        p = extra["planted"]
        lines += ["", "## Planted contamination and flaws (the embedded world's check of the steps above)", "",
                  "| kind | planted | removed |", "|---|---|---|"]
        lines += [f"| {k} | {n} | {p['caught'].get(k, 0)} |" for k, n in sorted(p["planted"].items())]
        natural = p["natural"]
        lines += ["", "Removed without being planted: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(natural.items())) or "none") + "."]
    for title, body in extra.get("notes", {}).items():
        lines += ["", f"## {title}", "", body]
    metrics = {f"card/{s}/{d}/rows": float(by[(s, d)]["rows"]) for (s, d) in by}
    metrics |= {f"card/{s}/{d}/tokens": float(by[(s, d)]["tokens"])
                for (s, d) in by if by[(s, d)]["tokens"] is not None}
    metrics |= {f"card/removed/{s}/{f}": float(n) for (s, f), n in
                Counter((r["step"], r.get("filter", r["step"])) for r in removed).items()}
    metrics["card/quarantined"] = float(len(quarantined))
    return "\n".join(lines) + "\n", metrics, _figure(by, steps, domains), table


def _fmt(tokens) -> str:
    return "—" if tokens is None else str(tokens)


def _sum_sources(table: list[dict]) -> list[dict]:
    acc: dict[tuple, dict] = {}
    for r in table:
        a = acc.setdefault((r["step"], r["domain"]), {"step": r["step"], "domain": r["domain"], "rows": 0, "tokens": 0})
        a["rows"] += r["rows"]
        a["tokens"] = None if r["tokens"] is None else a["tokens"] + r["tokens"]
    return list(acc.values())


def _figure(by: dict, steps: list[str], domains: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / max(1, len(steps))
    for k, step in enumerate(steps):
        for ax, key in zip(axes, ("rows", "tokens")):
            ax.bar([i + k * width for i in range(len(domains))], [by.get((step, d), {}).get(key) or 0 for d in domains],
                   width, label=step)
    for ax, key in zip(axes, ("rows", "tokens")):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(domains))], domains, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{key} per domain after each step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


