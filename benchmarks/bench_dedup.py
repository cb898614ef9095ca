"""MinHash near-duplicate removal: datasketch's default SHA-1 against xxHash, on the same corpus.

A synthetic corpus of ``--rows`` rows of 200–400 Zipf-distributed words (a 50k-word vocabulary, some
words capitalised or followed by punctuation); every 20th row is replaced by a planted near copy of an
earlier original row, cycling over three edits: format noise only (case, punctuation, spacing:
Jaccard 1 after normalisation), one word changed (≈ 0.97) and a 10-word sentence appended (≈ 0.97).
Three arms remove near duplicates with the same parameters (the base profile's: Jaccard 0.9, 128
permutations, 5-word shingles, seed 1) in this process, interleaved over ``--repeats`` rounds (the
best time of each is kept, so that load on a shared machine hits the arms alike):

1. ``before``: the previous ``data.dedup`` (copied below: ``MinHash.bulk`` with datasketch's
   default ``sha1_hash32``, each gram joined and encoded in Python, distinct grams as a set);
2. the same code with only the hash swapped for ``xxhash.xxh32_intdigest`` (the hash's share);
3. ``data.dedup`` as it is (xxh32, grams joined in C, hashed with repeats).

The table gives rows/s, M words/s, the speed-up over ``before``, each arm's recall of the planted
pairs per edit, its flags on rows nothing was planted in, and how many rows' flags differ from
``before`` (MinHash estimates differ between hashes, so a pair near the threshold may differ; the
planted pairs are far above it). Corpus generation is not timed.

    nice .venv/bin/python benchmarks/bench_dedup.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import random
import time
from collections import Counter

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from nemotron_cascade.data.decontamination import normalise
from nemotron_cascade.data.dedup import DedupConfig, find_near_duplicates

PUNCT = [",", ".", ";", "!", "?", ":"]
EDITS = ["format noise", "one word changed", "sentence appended"]
CONFIG = DedupConfig(threshold=0.9, num_perm=128, shingle=5, seed=1)  # conf/base parameters_data_curation.yml


# -- the previous data.dedup (before xxHash), verbatim but for the hashfunc argument -----------------

def before_shingles(text: str, k: int) -> list[bytes]:
    """The distinct word k-grams of a text (the whole text when it has fewer than k words)."""
    words = normalise(text)
    grams = {" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))}
    return [g.encode("utf-8") for g in grams]


def before_find_near_duplicates(texts, config: DedupConfig, hashfunc=sha1_hash32) -> list[int | None]:
    """The previous ``find_near_duplicates`` (``hashfunc=sha1_hash32`` is datasketch's default)."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    kept: dict[int, np.ndarray] = {}
    out, it, start = [], iter(texts), 0
    while batch := list(itertools.islice(it, config.batch_size)):
        sigs = MinHash.bulk([before_shingles(t, config.shingle) for t in batch], num_perm=config.num_perm,
                            seed=config.seed, hashfunc=hashfunc)
        for offset, sig in enumerate(sigs):
            i = start + offset
            hits = [j for j in lsh.query(sig) if np.mean(kept[j] == sig.hashvalues) >= config.threshold]
            if hits:
                out.append(min(hits))
            else:
                lsh.insert(i, sig, check_duplication=False)
                kept[i] = sig.hashvalues.astype(np.uint32)
                out.append(None)
        start += len(batch)
    return out


# -- the corpus -------------------------------------------------------------------------------------

def make_doc(rng: np.random.Generator, vocab: np.ndarray, cdf: np.ndarray, n_words: int) -> str:
    """One row: Zipf words, 8% capitalised, 10% followed by punctuation."""
    words = vocab[np.minimum(np.searchsorted(cdf, rng.random(n_words)), len(vocab) - 1)].astype(object)
    caps = rng.random(n_words) < 0.08
    words[caps] = [w.capitalize() for w in words[caps]]
    punct = rng.random(n_words) < 0.10
    words[punct] = [w + PUNCT[p] for w, p in zip(words[punct], rng.integers(0, len(PUNCT), punct.sum()))]
    return " ".join(words)


def plant(text: str, edit: str, rng: random.Random, new_words: list[str]) -> str:
    """A near copy of ``text`` under one of :data:`EDITS`."""
    words = text.split()
    if edit == "format noise":
        return "  ".join(w.upper() if rng.random() < 0.3 else w + rng.choice(PUNCT) if rng.random() < 0.2 else w
                         for w in words)
    if edit == "one word changed":
        words[rng.randrange(len(words))] = "changed"
        return " ".join(words)
    return text + " " + " ".join(new_words)


def make_corpus(rows: int, seed: int = 0) -> tuple[list[str], dict[int, tuple[int, str]]]:
    """``rows`` rows and the planted ones: ``{row: (source row, edit)}`` (every 20th row from row 20)."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    vocab = np.array(["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
                      for _ in range(50_000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    cdf = np.cumsum(weights / weights.sum())
    corpus, planted = [], {}
    for i in range(rows):
        if i and i % 20 == 0:
            src = rng.randrange(i)
            while src in planted:
                src = rng.randrange(i)
            edit = EDITS[(i // 20) % len(EDITS)]
            corpus.append(plant(corpus[src], edit, rng, make_doc(nrng, vocab, cdf, 10).split()))
            planted[i] = (src, edit)
        else:
            corpus.append(make_doc(nrng, vocab, cdf, int(nrng.integers(200, 401))))
    return corpus, planted


# -- the arms ---------------------------------------------------------------------------------------

ARMS = [
    ("before: MinHash.bulk, SHA-1 (datasketch default), Python-joined grams",
     lambda texts: before_find_near_duplicates(texts, CONFIG)),
    ("before, hash only swapped: xxh32_intdigest",
     lambda texts: before_find_near_duplicates(texts, CONFIG, hashfunc=xxhash.xxh32_intdigest)),
    ("data.dedup: xxh32_intdigest, C-joined grams (MinHash.generator)",
     lambda texts: find_near_duplicates(texts, CONFIG)),
]


def run_arms(corpus: list[str], repeats: int) -> list[tuple[str, float, list[int | None]]]:
    """Each arm's best time over ``repeats`` rounds (the arms interleaved, so that load on a shared
    machine hits them alike) and its flags (which must be the same in every round)."""
    best, flags = [float("inf")] * len(ARMS), [None] * len(ARMS)
    for _ in range(repeats):
        for a, (name, fn) in enumerate(ARMS):
            gc.collect()
            start = time.perf_counter()
            out = fn(corpus)
            best[a] = min(best[a], time.perf_counter() - start)
            if flags[a] is not None and out != flags[a]:
                raise RuntimeError(f"{name}: flags differ between rounds (not deterministic)")
            flags[a] = out
    return [(name, t, f) for (name, _), t, f in zip(ARMS, best, flags)]


def score(flags: list[int | None], planted: dict[int, tuple[int, str]]) -> tuple[dict[str, str], int]:
    """Recall per edit (``found/planted``) and flags on rows nothing was planted in."""
    found, total = Counter(), Counter()
    for i, (src, edit) in planted.items():
        total[edit] += 1
        found[edit] += flags[i] == src
    false = sum(f is not None for i, f in enumerate(flags) if i not in planted)
    return {e: f"{found[e]}/{total[e]}" for e in EDITS}, false


def machine() -> str:
    """CPU model and its widest AVX (Linux), cores."""
    model, avx = platform.processor() or platform.machine(), "?"
    try:
        info = open("/proc/cpuinfo").read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        avx = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    except (OSError, StopIteration):
        pass
    return f"{model} ({avx}), {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the arms, interleaved; the best time of each is kept")
    args = parser.parse_args()
    corpus, planted = make_corpus(args.rows)
    words = sum(len(t.split()) for t in corpus)
    print(f"{machine()}; corpus: {args.rows:,} rows, {words / 1e6:.1f} M words, {len(planted):,} planted near "
          f"copies; threshold {CONFIG.threshold}, {CONFIG.num_perm} permutations, {CONFIG.shingle}-word shingles")
    for _, fn in ARMS:  # warm-up (imports, allocator) outside the timings
        fn(corpus[:2000])
    results = run_arms(corpus, args.repeats)
    t_before, before = results[0][1], results[0][2]
    print("\n| arm | seconds | rows/s | M words/s | speed-up | planted found: "
          + " / ".join(EDITS) + " | other rows flagged | rows differing from before |")
    print("|---|---|---|---|---|---|---|---|")
    for name, t, flags in results:
        recall, false = score(flags, planted)
        differ = sum(a != b for a, b in zip(flags, before))
        print(f"| {name} | {t:.1f} | {args.rows / t:,.0f} | {words / t / 1e6:.2f} | {t_before / t:.2f}x | "
              f"{' / '.join(recall.values())} | {false} | {differ} |")


if __name__ == "__main__":
    main()
