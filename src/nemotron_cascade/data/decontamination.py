"""n-gram decontamination against benchmark texts (the paper: 9-gram overlap).

Normalisation (``normalise``): NFKC, lower case, punctuation and ``_`` replaced by spaces, split on
whitespace. A text is contaminated when it shares any n-word sequence with a benchmark text; a
benchmark text shorter than n words matches when its whole word sequence appears in the text.

How it is fast (``benchmarks/bench_decontamination.py`` compares it with a plain Python set of
n-gram tuples on the same corpus):

* Texts stream through in chunks (``chunk_size``); only the benchmark index and one chunk are held.
* A chunk becomes one byte buffer. ASCII texts go in raw (``str.isascii`` is O(1)); for them the
  normalisation above is exactly "words are runs of ``[A-Za-z0-9]``, lower-cased", which the kernel
  does byte by byte. A non-ASCII text is normalised by :func:`normalise` in Python first and joined
  with spaces, so the kernel only splits it.
* A numba kernel, parallel over the texts of a chunk (``prange``, both cores), hashes each word
  (FNV-1a, 64 bit) into prefix hashes of the word sequence, so that any k consecutive words hash in
  O(1) (polynomial rolling hash, then a splitmix finaliser), and probes an open-addressing table of
  the benchmark's n-gram hashes. Benchmark texts shorter than n words are indexed by their
  own length k and probed with k-gram hashes (salted by k).

A 64-bit hash collision could flag a clean text; at 2⁻⁶⁴ per probe it is not expected in any corpus
this project will see. :func:`find_contaminated_reference` is the slow exact version (tuples of
words) that tests and the benchmark compare against.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

import numba
import numpy as np

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_EMPTY = np.uint64(0)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_GRAM_MUL = np.uint64(0x9E3779B97F4A7C15)


def normalise(text: str) -> list[str]:
    """Lower-cased words with punctuation removed (NFKC first, so look-alike forms agree)."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()


@numba.njit(cache=True)
def _mix(h):
    # splitmix64 finaliser: the n-gram hash of the folded word hashes; never 0 (the empty slot).
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h | np.uint64(1)


@numba.njit(cache=True)
def _word_byte(c):
    return (48 <= c <= 57) or (97 <= c <= 122) or (65 <= c <= 90) or c >= 128


@numba.njit(cache=True)
def _probe(table, h):
    mask = np.uint64(table.shape[0] - 1)
    i = h & mask
    while True:
        v = table[i]
        if v == h:
            return True
        if v == _EMPTY:
            return False
        i = (i + np.uint64(1)) & mask


@numba.njit(cache=True)
def _prefix(buf, start, end, pref):
    """Word hashes of ``buf[start:end]`` folded into prefix hashes ``pref[i] = sum_j w_j M^(i-1-j)``
    (so any k words ending at word i hash in O(1)); returns the number of words."""
    nwords, h, inword = 0, _FNV_OFFSET, False
    pref[0] = np.uint64(0)
    for p in range(start, end + 1):
        c = buf[p] if p < end else 32
        if _word_byte(c):
            if 65 <= c <= 90:
                c += 32
            h = (h ^ np.uint64(c)) * _FNV_PRIME
            inword = True
        elif inword:
            pref[nwords + 1] = pref[nwords] * _GRAM_MUL + h
            nwords += 1
            h, inword = _FNV_OFFSET, False
    return nwords


@numba.njit(cache=True)
def _gram(pref, i, k, mpow_k):
    """Hash of the k words ending before prefix index i (salted by k; never 0)."""
    return _mix((pref[i] - pref[i - k] * mpow_k) ^ (np.uint64(k) * _FNV_PRIME))


@numba.njit(cache=True, parallel=True)
def _scan(buf, offsets, table, lengths, mpow):
    """For each text ``buf[offsets[d]:offsets[d+1]]``: does any k-gram (k in ``lengths``) hit the table."""
    ndoc = offsets.shape[0] - 1
    out = np.zeros(ndoc, np.bool_)
    for d in numba.prange(ndoc):
        pref = np.empty((offsets[d + 1] - offsets[d]) // 2 + 2, np.uint64)
        nwords = _prefix(buf, offsets[d], offsets[d + 1], pref)
        for i in range(1, nwords + 1):
            for j in range(lengths.shape[0]):
                k = lengths[j]
                if k <= i and _probe(table, _gram(pref, i, k, mpow[j])):
                    out[d] = True
                    break
            if out[d]:
                break
    return out


@numba.njit(cache=True)
def _grams(buf, offsets, n, mpow_n, mpow_all):
    """Hashes of every n-gram of each text, or of the whole word sequence of a text under n words
    (``mpow_all[k]`` = M^k for k < n)."""
    out = np.empty(buf.shape[0] // 2 + offsets.shape[0] + 1, np.uint64)
    m = 0
    for d in range(offsets.shape[0] - 1):
        pref = np.empty((offsets[d + 1] - offsets[d]) // 2 + 2, np.uint64)
        nwords = _prefix(buf, offsets[d], offsets[d + 1], pref)
        if nwords >= n:
            for i in range(n, nwords + 1):
                out[m] = _gram(pref, i, n, mpow_n)
                m += 1
        elif nwords > 0:
            out[m] = _gram(pref, nwords, nwords, mpow_all[nwords])
            m += 1
    return out[:m]


def _powers(ks) -> np.ndarray:
    """M^k (mod 2^64) for each k."""
    return np.array([pow(int(_GRAM_MUL), int(k), 1 << 64) for k in ks], np.uint64)


def _encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One byte buffer for a chunk of texts, and the byte offset where each starts (plus the end)."""
    parts = [t if t.isascii() else " ".join(normalise(t)) for t in texts]
    sizes = [len(p) if p.isascii() else len(p.encode("utf-8")) for p in parts]
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return np.frombuffer("".join(parts).encode("utf-8"), np.uint8), offsets


class BenchmarkIndex:
    """The hashed n-grams of the benchmark texts (and whole sequences of those under n words)."""

    def __init__(self, benchmark_texts: Iterable[str], n: int = 9):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        texts = list(benchmark_texts)
        grams = np.unique(_grams(*_encode(texts), n, _powers([n])[0], _powers(range(n)))) if texts \
            else np.zeros(0, np.uint64)
        self.size = len(grams)
        # k of every indexed sequence: n, plus each length of a benchmark text shorter than n
        short = {len(w) for w in map(normalise, texts) if 0 < len(w) < n}
        self.lengths = np.array(sorted(short | {n}), np.int64)
        self.powers = _powers(self.lengths)
        self.table = np.zeros(1 << max(4, int(2 * len(grams)).bit_length()), np.uint64)
        _fill(self.table, grams)

    def flags(self, texts: Sequence[str]) -> np.ndarray:
        """Contamination flag of each text of one chunk."""
        if not texts:
            return np.zeros(0, bool)
        if self.size == 0:
            return np.zeros(len(texts), bool)
        return _scan(*_encode(texts), self.table, self.lengths, self.powers)


@numba.njit(cache=True)
def _fill(table, grams):
    mask = np.uint64(table.shape[0] - 1)
    for h in grams:
        i = h & mask
        while table[i] != _EMPTY and table[i] != h:
            i = (i + np.uint64(1)) & mask
        table[i] = h


def iter_contaminated(texts: Iterable[str], index: BenchmarkIndex, chunk_size: int = 8192) -> Iterator[bool]:
    """Stream the flags of ``texts`` (any iterable; one chunk held at a time)."""
    it = iter(texts)
    while chunk := list(itertools.islice(it, chunk_size)):
        yield from index.flags(chunk).tolist()


def find_contaminated(texts: Sequence[str], benchmark_texts: Sequence[str], n: int = 9) -> list[bool]:
    """For each text, whether it shares an ``n``-word sequence with any benchmark text."""
    return list(iter_contaminated(texts, BenchmarkIndex(benchmark_texts, n)))


def find_contaminated_reference(texts: Iterable[str], benchmark_texts: Iterable[str], n: int = 9) -> list[bool]:
    """The plain version: a Python set of n-gram tuples (exact; the benchmark's reference)."""
    grams: set[tuple[str, ...]] = set()
    for text in benchmark_texts:
        words = normalise(text)
        if len(words) >= n:
            grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        elif words:  # shorter than n: the whole sequence
            grams.add(tuple(words))
    lengths = sorted({len(g) for g in grams})
    out = []
    for text in texts:
        words = normalise(text)
        out.append(any(tuple(words[i:i + k]) in grams for k in lengths for i in range(len(words) - k + 1)))
    return out
