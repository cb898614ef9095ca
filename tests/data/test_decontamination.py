"""9-gram decontamination: planted leaks under noise are found, near misses are not."""

import pytest

from nemotron_cascade.data.decontamination import find_contaminated, normalise

BENCH = "How many apples does Lena have now if she buys three boxes of twelve apples each?"
#        how many apples does lena have now if she buys three boxes of twelve apples each (16 words)

CASES = [
    ("exact 9-word leak", "Here it is: how many apples does Lena have now if she buys.", True),
    ("leak with case noise", "HOW MANY APPLES DOES LENA HAVE NOW IF SHE and more", True),
    ("leak with punctuation noise", "how, many apples; does LENA -- have now? if she!", True),
    ("leak with spacing noise", "how   many\napples\tdoes lena have   now if she", True),
    ("whole benchmark copied", BENCH, True),
    ("8-word near miss", "how many apples does lena have now if", False),
    ("9 words with one changed", "how many apples does lena have today if she", False),
    ("same words shuffled", "many how apples lena does have now she if", False),
    ("unrelated text", "Write a short note about otters.", False),
    ("empty text", "", False),
]


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_nine_gram_overlap(name, text, expected):
    assert find_contaminated([text], [BENCH]) == [expected]


SHORT = [
    ("short benchmark text found as a whole", "Answer: what is two plus two? Four.", ["What is two plus two?"], True),
    ("short benchmark text must match whole", "what is two plus three", ["What is two plus two?"], False),
    ("short benchmark split across words does not match", "what is two plusplus two", ["what is two plus two"], False),
]


@pytest.mark.parametrize("name,text,bench,expected", SHORT, ids=[c[0] for c in SHORT])
def test_short_benchmark_texts(name, text, bench, expected):
    assert find_contaminated([text], bench) == [expected]


def test_normalisation():
    assert normalise("Hello,   WORLD! it's_ok") == ["hello", "world", "it", "s", "ok"]


def test_results_align_with_inputs_and_n_is_a_parameter():
    texts = ["a b c d", "x y z", "b c d e"]
    assert find_contaminated(texts, ["a b c d e"], n=4) == [True, False, True]
    assert find_contaminated(texts, ["a b c d e"], n=5) == [False, False, False]


def test_planted_world_leaks_are_all_found_and_nothing_else():
    from nemotron_cascade.data import world

    bench = [r["prompt"] for r in world.generate_tasks("code", "bench", 30, 0)]
    clean = [r["prompt"] for r in world.generate_tasks("instruction_following", "sft", 50, 0)]
    leaks = [f"Please solve: {b.upper()}" for b in bench[:10]]
    flags = find_contaminated(clean + leaks, bench)
    assert flags == [False] * len(clean) + [True] * len(leaks)


def test_bad_n():
    with pytest.raises(ValueError):
        find_contaminated(["a"], ["a"], n=0)


def _random_corpus(seed: int, n_docs: int):
    import random

    rng = random.Random(seed)
    vocab = ["apple", "Äpfel", "straße", "ﬁle", "ＡＢＣ", "naïve", "x_y", "İstanbul", "2²", "½", "日本語", "emoji😀",
             "it's", "C++", "a.b", "tab\there", "under_score", "ǅemal", "ß", "KELVIN", "K", "é"]
    vocab += [f"w{i}" for i in range(40)]
    sep = [" ", "  ", "\n", "\t", ", ", "; ", " -- ", "!", "?", "\u00a0", "\u2003", "\x1c", "_"]

    def doc(k):
        return "".join(rng.choice(vocab) + rng.choice(sep) for _ in range(k))
    bench = [doc(rng.randint(1, 30)) for _ in range(40)]
    texts = [doc(rng.randint(0, 60)) for _ in range(n_docs)]
    # plant copies of benchmark spans with noise
    for i in range(0, n_docs, 7):
        b = bench[i % len(bench)]
        texts[i] = texts[i] + " " + b.upper() + " " + texts[(i + 1) % n_docs]
    return texts, bench


@pytest.mark.parametrize("seed,n", [(0, 9), (1, 9), (2, 3), (3, 1), (4, 40)])
def test_fast_index_agrees_with_the_plain_set_of_tuples(seed, n):
    """Unicode (NFKC look-alikes, ß, İ, superscripts, CJK, emoji), odd whitespace and underscores:
    the numba kernel and the reference give identical flags."""
    from nemotron_cascade.data.decontamination import find_contaminated_reference

    texts, bench = _random_corpus(seed, 300)
    fast = find_contaminated(texts, bench, n=n)
    assert fast == find_contaminated_reference(texts, bench, n=n)
    assert 0 < sum(fast) < len(texts)


def test_streaming_in_chunks_gives_the_same_flags():
    from nemotron_cascade.data.decontamination import BenchmarkIndex, iter_contaminated

    texts, bench = _random_corpus(5, 500)
    index = BenchmarkIndex(bench, 9)
    whole = list(iter_contaminated(texts, index, chunk_size=10_000))
    assert list(iter_contaminated(iter(texts), index, chunk_size=7)) == whole


def test_whole_item_matching_with_n_above_every_length():
    """n larger than any benchmark text: each matches only as a whole word sequence (the base profile)."""
    item = " ".join(f"word{i}" for i in range(150))
    assert find_contaminated([f"Intro. {item.upper()}! Outro", item[:-8]], [item], n=400) == [True, False]


def test_no_benchmark_texts_flags_nothing():
    assert find_contaminated(["a b c"], [], n=9) == [False]
    assert find_contaminated([], ["a b c"], n=9) == []
