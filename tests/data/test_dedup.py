"""MinHash LSH near-duplicate removal: near copies go, distinct texts stay, order decides who stays;
the grams are hashed with xxHash (not datasketch's default SHA-1), deterministically."""

import contextlib
import io
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import xxhash
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

from nemotron_cascade.data import dedup
from nemotron_cascade.data.curation import format_noise
from nemotron_cascade.data.decontamination import normalise
from nemotron_cascade.data.dedup import DedupConfig, find_near_duplicates, grams, shingles, signatures

WORDS = [f"w{i}" for i in range(5000)]
BASE = DedupConfig(threshold=0.9, num_perm=128, shingle=5, seed=1)  # conf/base parameters_data_curation.yml


def _doc(rng, n=80):
    return " ".join(rng.choice(WORDS) for _ in range(n))


CASES = [
    ("identical copy", lambda d, rng: d, True),
    ("case, punctuation and spacing noise only", lambda d, rng: d.upper().replace(" ", " ,  "), True),
    ("one word appended", lambda d, rng: d + " extra", True),
    ("a different document", lambda d, rng: _doc(rng), False),
    ("half the words replaced", lambda d, rng: " ".join(d.split()[:40]) + " " + _doc(rng, 40), False),
]


@pytest.mark.parametrize("name,edit,is_dup", CASES, ids=[c[0] for c in CASES])
def test_near_duplicates_at_threshold_0_9(name, edit, is_dup):
    rng = random.Random(0)
    original = _doc(rng)
    assert (find_near_duplicates([original, edit(original, rng)], DedupConfig(threshold=0.9))
            == [None, 0 if is_dup else None])


def test_first_of_a_cluster_stays_and_batches_do_not_matter():
    rng = random.Random(1)
    docs = [_doc(rng) for _ in range(30)]
    texts = docs + [docs[3], docs[10].upper(), docs[3] + "!"]
    expected = [None] * 30 + [3, 10, 3]
    assert find_near_duplicates(texts, DedupConfig(threshold=0.9)) == expected
    assert find_near_duplicates(iter(texts), DedupConfig(threshold=0.9, batch_size=4)) == expected


def test_shingles_of_short_texts_and_bad_config():
    assert shingles("Hello, world", 5) == [b"hello world"]
    with pytest.raises(ValueError, match="threshold"):
        DedupConfig(threshold=0.0)
    with pytest.raises(ValueError, match="num_perm"):
        DedupConfig(num_perm=1)


def test_planted_copies_under_the_worlds_format_noise_are_flagged_and_distinct_texts_kept():
    # the base profile's parameters, 300 distinct documents, 30 copies of earlier ones under the noise
    # the world plants (curation.format_noise): exactly the copies go, each pointing at its source
    rng = random.Random(2)
    texts = [_doc(rng, rng.randint(20, 200)) for _ in range(300)]
    expected = [None] * len(texts)
    for _ in range(30):
        src = rng.randrange(300)
        texts.append(format_noise(texts[src], rng))
        expected.append(src)
    assert find_near_duplicates(texts, BASE) == expected


def _reference_shingles(text, k):
    """The shingles as the previous implementation built them: each gram joined, then encoded."""
    words = normalise(text)
    return {" ".join(words[i:i + k]).encode("utf-8") for i in range(max(1, len(words) - k + 1))}


GRAM_CASES = [  # (name, text, k, expected grams in order: None = only compare with the reference)
    ("empty text: one empty gram, so empty texts are duplicates of each other", "", 5, [b""]),
    ("punctuation and spaces only: no words, the same as empty", " !!, ... \t", 5, [b""]),
    ("shorter than a shingle: the whole text is the one gram", "Hello, world", 5, [b"hello world"]),
    ("exactly k words: one gram", "a b c d e", 5, [b"a b c d e"]),
    ("k + 1 words: two grams, in order", "a b c d e f", 5, [b"a b c d e", b"b c d e f"]),
    ("k = 1: the words themselves, repeats kept", "x y x", 1, [b"x", b"y", b"x"]),
    ("a repeated word: repeated grams are hashed too (they cannot move a minimum)", "z z z z z z z", 3,
     [b"z z z"] * 5),
    ("non-ASCII: NFKC (the ligature fi), UTF-8 bytes split at the joining spaces only",
     "ﬁne Überweisung 日本語 テキスト ß é x y", 2, None),
    ("tabs, newlines and punctuation between words", "one,\ttwo;\nthree -- four!! five six seven", 5, None),
]


@pytest.mark.parametrize("name,text,k,expected", GRAM_CASES, ids=[c[0] for c in GRAM_CASES])
def test_grams_are_the_previous_shingles(name, text, k, expected):
    got = grams(text, k)
    if expected is not None:
        assert got == expected
    assert set(got) == _reference_shingles(text, k)
    assert shingles(text, k) == list(dict.fromkeys(got))


EDGE_CASES = [  # (name, texts, expected flags under the base parameters)
    ("two empty texts: the same (empty) gram set", ["", ""], [None, 0]),
    ("empty and punctuation-only: both have no words", ["", "?!  ..."], [None, 0]),
    ("empty and a real text: nothing shared", ["", "a real text of several words here"], [None, None]),
    ("shorter than a shingle, same words under noise", ["Hello, world", "hello   WORLD!"], [None, 0]),
    ("shorter than a shingle, one word differs: whole-text grams differ", ["hello world", "hello there"],
     [None, None]),
    ("ligature vs plain letters: NFKC makes them one word", ["a ﬁne day", "a fine day"], [None, 0]),
]


@pytest.mark.parametrize("name,texts,expected", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_cases(name, texts, expected):
    assert find_near_duplicates(texts, BASE) == expected


def test_the_hash_is_xxh32_not_sha1():
    # the signature is datasketch's MinHash of the distinct shingles with xxh32 as hashfunc; with the
    # default SHA-1 the same text gets another signature
    text = _doc(random.Random(3), 120)
    assert dedup.HASHFUNC is xxhash.xxh32_intdigest
    (sig,) = signatures([text], BASE)
    assert sig.hashfunc is xxhash.xxh32_intdigest
    expected = MinHash(num_perm=128, seed=1, hashfunc=xxhash.xxh32_intdigest)
    expected.update_batch(shingles(text, 5))
    np.testing.assert_array_equal(sig.hashvalues, expected.hashvalues)
    sha1 = MinHash(num_perm=128, seed=1, hashfunc=sha1_hash32)
    sha1.update_batch(shingles(text, 5))
    assert not np.array_equal(sig.hashvalues, sha1.hashvalues)


_PROBE = """
import hashlib, random, sys
from nemotron_cascade.data.dedup import DedupConfig, find_near_duplicates, signatures
rng = random.Random(4)
docs = [" ".join(f"w{rng.randrange(900)}" for _ in range(60)) for _ in range(40)]
docs += [docs[5].upper(), docs[7] + " tail"]
sigs = signatures(docs, DedupConfig(threshold=0.9))
print(hashlib.sha256(b"".join(s.hashvalues.tobytes() for s in sigs)).hexdigest(),
      find_near_duplicates(docs, DedupConfig(threshold=0.9)))
"""


def test_signatures_and_flags_are_the_same_in_every_process():
    # xxHash is unsalted (unlike Python's str hash, PYTHONHASHSEED): two interpreters with different
    # hash seeds, and this one, give the same signatures and flags
    outs = {subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    here = io.StringIO()
    with contextlib.redirect_stdout(here):
        exec(_PROBE, {})
    outs.add(here.getvalue())
    assert len(outs) == 1
    assert outs.pop().split(" ", 1)[1].strip() == str([None] * 40 + [5, 7])
