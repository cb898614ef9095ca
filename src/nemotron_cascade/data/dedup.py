"""Near-duplicate removal with MinHash LSH (datasketch).

Each text becomes the set of its word ``shingle``-grams (words as :func:`decontamination.normalise`
gives them), hashed in bulk (``MinHash.bulk``: one vectorised pass per batch, not per-token
``update``). Texts stream through in batches; the LSH index holds only the kept texts. A text is a
near duplicate when an LSH candidate among the kept texts has an estimated Jaccard similarity
≥ ``threshold``; the first of a cluster is kept (stable order), so results do not depend on batch size.

The LSH index lives in memory (datasketch has no on-disk index): about 1.5 kB per kept text at 128
permutations (``benchmarks/bench_decontamination.py`` measures it for 100k documents).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from nemotron_cascade.data.decontamination import normalise


@dataclass(frozen=True)
class DedupConfig:
    """``threshold``: Jaccard similarity above which two texts are duplicates; ``num_perm``: MinHash
    permutations; ``shingle``: words per shingle; ``seed``: MinHash seed; ``batch_size``: texts per
    bulk hashing call."""

    threshold: float = 0.8
    num_perm: int = 128
    shingle: int = 5
    seed: int = 1
    batch_size: int = 4096

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"dedup threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2 or self.shingle < 1:
            raise ValueError(f"dedup needs num_perm >= 2 and shingle >= 1, got {self.num_perm}, {self.shingle}")


def shingles(text: str, k: int) -> list[bytes]:
    """The distinct word k-grams of a text (the whole text when it has fewer than k words)."""
    words = normalise(text)
    grams = {" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))}
    return [g.encode("utf-8") for g in grams]


def iter_duplicates(texts: Iterable[str], config: DedupConfig = DedupConfig()) -> Iterator[int | None]:
    """For each text in order: ``None`` when kept, else the index of the kept text it duplicates."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    kept: dict[int, np.ndarray] = {}
    it, start = iter(texts), 0
    while batch := list(itertools.islice(it, config.batch_size)):
        sigs = MinHash.bulk([shingles(t, config.shingle) for t in batch], num_perm=config.num_perm,
                            seed=config.seed)
        for offset, sig in enumerate(sigs):
            i = start + offset
            hits = [j for j in lsh.query(sig)
                    if np.mean(kept[j] == sig.hashvalues) >= config.threshold]
            if hits:
                yield min(hits)
            else:
                lsh.insert(i, sig, check_duplication=False)
                kept[i] = sig.hashvalues.astype(np.uint32)
                yield None
        start += len(batch)


def find_near_duplicates(texts: Iterable[str], config: DedupConfig = DedupConfig()) -> list[int | None]:
    """:func:`iter_duplicates` as a list."""
    return list(iter_duplicates(texts, config))
