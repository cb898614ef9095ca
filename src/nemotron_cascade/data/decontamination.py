"""n-gram decontamination against benchmark texts (the paper: 9-gram overlap).

Normalisation: lower case, punctuation replaced by spaces, split on whitespace. A text is
contaminated when it shares any n-word sequence with a benchmark text; a benchmark text shorter
than n words matches when its whole word sequence appears in the text.

This first slice is exact and single-process: benchmark n-grams are hashed to 64-bit integers
(blake2b) in one set, and each text is scanned once (``Σ len(text)`` work, nothing but the
benchmark index held in memory, texts may be a generator). The streaming, two-core version with
its benchmark against a plain set of tuples is issue #3.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Sequence

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalise(text: str) -> list[str]:
    """Lower-cased words with punctuation removed (NFKC first, so look-alike forms agree)."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()


def _key(words: Sequence[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(words).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def build_index(benchmark_texts: Iterable[str], n: int = 9) -> tuple[set[int], dict[int, set[int]]]:
    """Hashed n-grams of the benchmarks, and hashed whole sequences of shorter ones by length."""
    grams, short = set(), {}
    for text in benchmark_texts:
        words = normalise(text)
        if not words:
            continue
        if len(words) < n:
            short.setdefault(len(words), set()).add(_key(words))
        else:
            grams.update(_key(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams, short


def is_contaminated(words: list[str], n: int, grams: set[int], short: dict[int, set[int]]) -> bool:
    """Whether a normalised text hits the index."""
    if len(words) >= n and any(_key(words[i:i + n]) in grams for i in range(len(words) - n + 1)):
        return True
    return any(_key(words[i:i + k]) in keys for k, keys in short.items() for i in range(len(words) - k + 1))


def find_contaminated(texts: Sequence[str], benchmark_texts: Sequence[str], n: int = 9) -> list[bool]:
    """For each text, whether it shares an ``n``-word sequence with any benchmark text."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams, short = build_index(benchmark_texts, n)
    return [is_contaminated(normalise(t), n, grams, short) for t in texts]
