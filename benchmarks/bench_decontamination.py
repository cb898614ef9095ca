"""Decontamination and near-duplicate removal throughput, against their plain references.

1. 9-gram decontamination of a synthetic corpus (``--docs`` documents of ~200 Zipf-distributed
   words, punctuation and case noise, some with planted benchmark spans) against ``--bench``
   benchmark texts: the plain Python set of n-gram tuples (``find_contaminated_reference``, one core)
   and the project's streaming numba kernel (``find_contaminated``) with one thread and with all
   cores. The flags must be identical; the table gives docs/s, words/s and the speed-up.
2. MinHash near-duplicate removal (``data.dedup``) of ``--dedup-docs`` documents (a share of them
   near copies): docs/s and the peak resident memory of a fresh process doing only that, plus the
   per-token ``MinHash.update`` reference on a slice.

    .venv/bin/python benchmarks/bench_decontamination.py [--docs 60000] [--bench 2000] [--dedup-docs 100000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import resource
import time

import numba
import numpy as np

from nemotron_cascade.data.decontamination import find_contaminated, find_contaminated_reference

PUNCT = [",", ".", ";", "!", "?", " --", ":"]


def make_vocab(rng: random.Random, size: int = 50_000) -> tuple[list[str], np.ndarray]:
    """Random lower-case words and Zipf weights (natural text's word frequencies)."""
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(size)]
    weights = 1.0 / np.arange(1, size + 1) ** 1.1
    return words, np.cumsum(weights / weights.sum())


def make_doc(rng: random.Random, vocab: list[str], cdf: np.ndarray, n_words: int) -> str:
    """One document: Zipf words, some capitalised, some followed by punctuation."""
    idx = np.searchsorted(cdf, np.random.default_rng(rng.randrange(1 << 30)).random(n_words))
    out = []
    for i in idx:
        w = vocab[min(i, len(vocab) - 1)]
        r = rng.random()
        if r < 0.08:
            w = w.capitalize()
        if r > 0.9:
            w += rng.choice(PUNCT)
        out.append(w)
    return " ".join(out)


def make_corpus(docs: int, bench: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``docs`` documents of ~200 words; 1% carry a 12-word span of a benchmark text in upper case."""
    rng = random.Random(seed)
    vocab, cdf = make_vocab(rng)
    bench_texts = [make_doc(rng, vocab, cdf, rng.randint(40, 120)) for _ in range(bench)]
    corpus = []
    for i in range(docs):
        text = make_doc(rng, vocab, cdf, rng.randint(150, 250))
        if i % 100 == 0:
            words = rng.choice(bench_texts).split()
            start = rng.randrange(0, len(words) - 12)
            text += " " + " ".join(words[start:start + 12]).upper() + "!"
        corpus.append(text)
    return corpus, bench_texts


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_decontamination(docs: int, bench: int) -> list[tuple]:
    """Rows (implementation, threads, seconds, docs/s, M words/s, speed-up); flags must agree."""
    corpus, bench_texts = make_corpus(docs, bench)
    words = sum(len(t.split()) for t in corpus)
    find_contaminated(corpus[:100], bench_texts[:10])  # compile (numba cache) outside the timing
    ref, t_ref = timed(find_contaminated_reference, corpus, bench_texts)
    rows = [("python set of 9-gram tuples (reference)", 1, t_ref, ref)]
    cores = numba.config.NUMBA_NUM_THREADS
    for threads in sorted({1, cores}):
        numba.set_num_threads(threads)
        flags, t = timed(find_contaminated, corpus, bench_texts)
        rows.append(("numba kernel, streaming (chunks of 8192)", threads, t, flags))
    numba.set_num_threads(cores)
    for name, _, _, flags in rows[1:]:
        if flags != ref:
            raise RuntimeError(f"{name}: flags differ from the reference on "
                               f"{sum(a != b for a, b in zip(flags, ref))} docs")
    print(f"corpus: {docs} docs, {words / 1e6:.1f} M words, {bench} benchmark texts, "
          f"{sum(ref)} contaminated (flags identical in every row)")
    return [(name, th, t, docs / t, words / t / 1e6, t_ref / t) for name, th, t, _ in rows]


def _dedup_child(docs: int, queue) -> None:
    from nemotron_cascade.data.dedup import DedupConfig, find_near_duplicates

    corpus, _ = make_corpus(docs, 10, seed=1)
    rng = random.Random(2)
    for i in range(0, docs, 20):  # 5% near copies of an earlier document (one word changed)
        words = corpus[rng.randrange(0, max(1, i))].split()
        words[rng.randrange(len(words))] = "changed"
        corpus[i] = " ".join(words)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = DedupConfig(threshold=0.8, num_perm=128, shingle=5)
    dups, t = timed(find_near_duplicates, corpus, cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((t, sum(d is not None for d in dups), (peak - base) / 1024, peak / 1024))


def bench_dedup(docs: int) -> tuple:
    """(seconds, docs/s, duplicates found, MB above the corpus, peak MB) in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_dedup_child, args=(docs, queue))
    proc.start()
    t, found, extra_mb, peak_mb = queue.get()
    proc.join()
    return t, docs / t, found, extra_mb, peak_mb


def bench_minhash_update(docs: int) -> float:
    """docs/s of per-token ``MinHash.update`` (the slow reference) on ``docs`` documents."""
    from datasketch import MinHash

    from nemotron_cascade.data.dedup import shingles

    corpus, _ = make_corpus(docs, 10, seed=3)
    start = time.perf_counter()
    for text in corpus:
        m = MinHash(num_perm=128, seed=1)
        for s in shingles(text, 5):
            m.update(s)
    return docs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=60_000)
    parser.add_argument("--bench", type=int, default=2_000)
    parser.add_argument("--dedup-docs", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numba {numba.__version__}")
    print("\n| decontamination (n = 9) | threads | seconds | docs/s | M words/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, th, t, dps, wps, up in bench_decontamination(args.docs, args.bench):
        print(f"| {name} | {th} | {t:.2f} | {dps:,.0f} | {wps:.2f} | {up:.1f}x |")
    t, dps, found, extra, peak = bench_dedup(args.dedup_docs)
    upd = bench_minhash_update(2_000)
    print("\n| MinHash dedup (128 perms, 5-word shingles, threshold 0.8) "
          "| docs | seconds | docs/s | near dups | memory |")
    print("|---|---|---|---|---|---|")
    print(f"| per-token MinHash.update, hashing only (reference) | 2000 | {2000 / upd:.2f} | {upd:,.0f} | — | — |")
    print(f"| data.dedup: MinHash.bulk + LSH, streaming | {args.dedup_docs} | {t:.1f} | {dps:,.0f} | {found} | "
          f"+{extra:.0f} MB during dedup (peak RSS {peak:.0f} MB) |")


if __name__ == "__main__":
    main()
