"""Near-duplicate removal with MinHash LSH (datasketch).

Each text becomes the set of its word ``shingle``-grams (words as :func:`decontamination.normalise`
gives them, joined by one space, UTF-8). The grams are hashed by :data:`HASHFUNC`, xxHash's
32-bit digest (``xxhash.xxh32_intdigest``, seed 0): a non-cryptographic hash, ~10× faster per gram
than datasketch's default SHA-1 (``sha1_hash32``), with the same 32-bit range, which datasketch's
``affine32`` permutations (seeded by ``seed``) then mix. The hash only needs to be well spread and
deterministic; xxHash is both, on every platform and run (unlike Python's salted ``hash``).

Signatures are computed in bulk (``MinHash.generator``: one ``update_batch`` per text, its
permutations vectorised over the text's grams). A text's grams are hashed with repeats (a repeated
gram cannot change a minimum, so the signature is that of the distinct set, without building it).
Texts stream through in batches; the LSH index holds only the kept texts. A text is a near
duplicate when an LSH candidate among the kept texts has an estimated Jaccard similarity
≥ ``threshold``; the first of a cluster is kept (stable order), so results do not depend on batch size.
The LSH proposes a pair only with a probability: datasketch weighs its false positives and negatives
alike, so at threshold 0.9 (5 bands of 25 rows) it proposes a pair of Jaccard 0.95 with probability
0.80 and of 0.97 with 0.96 (copies under format noise, Jaccard 1, always).

The LSH index lives in memory (datasketch has no on-disk index): about 4 kB per kept text at 128
permutations and threshold 0.8 (``benchmarks/bench_decontamination.py`` measures it for 100k
documents); ``benchmarks/bench_dedup.py`` compares the SHA-1 and xxHash signatures on one corpus.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH

from nemotron_cascade.data.decontamination import normalise

#: The hash of a gram's UTF-8 bytes, as datasketch's ``hashfunc``: a C function taking bytes and
#: returning an int below 2**32 (the range of the default ``affine32`` scheme).
HASHFUNC = xxhash.xxh32_intdigest


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


def grams(text: str, k: int) -> list[bytes]:
    """Every word k-gram of a text in order, repeats included, as UTF-8 (the whole text, one gram,
    when it has fewer than k words; ``b""`` for a text without words).

    The normalised words are joined and encoded once, split back into byte words (a word holds no
    space, and no UTF-8 byte of another character is a space), and the grams are joined by
    ``map``/``zip`` in C: no Python step per gram."""
    words = " ".join(normalise(text)).encode("utf-8").split(b" ")
    if len(words) <= k:
        return [b" ".join(words)]
    return list(map(b" ".join, zip(*(words[i:len(words) - k + 1 + i] for i in range(k)))))


def shingles(text: str, k: int) -> list[bytes]:
    """The distinct word k-grams of a text, in order of first occurrence (see :func:`grams`)."""
    return list(dict.fromkeys(grams(text, k)))


def signatures(texts: list[str], config: DedupConfig) -> list[MinHash]:
    """The MinHash signatures of ``texts`` (``num_perm`` and ``seed`` of ``config``, :data:`HASHFUNC`)."""
    return list(MinHash.generator((grams(t, config.shingle) for t in texts), num_perm=config.num_perm,
                                  seed=config.seed, hashfunc=HASHFUNC))


def iter_duplicates(texts: Iterable[str], config: DedupConfig = DedupConfig()) -> Iterator[int | None]:
    """For each text in order: ``None`` when kept, else the index of the kept text it duplicates."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    kept: dict[int, np.ndarray] = {}
    it, start = iter(texts), 0
    while batch := list(itertools.islice(it, config.batch_size)):
        for offset, sig in enumerate(signatures(batch, config)):
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
