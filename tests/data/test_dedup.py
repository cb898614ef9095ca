"""MinHash LSH near-duplicate removal: near copies go, distinct texts stay, order decides who stays."""

import random

import pytest

from nemotron_cascade.data.dedup import DedupConfig, find_near_duplicates, shingles

WORDS = [f"w{i}" for i in range(5000)]


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
