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
