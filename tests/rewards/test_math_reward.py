"""Math reward: Math-Verify on the final answer, hedges rejected, time bounded off the main thread."""

from __future__ import annotations

import threading
import time

import pytest

from nemotron_cascade.rewards import math as math_module
from nemotron_cascade.rewards.answers import boxed_all, final_answer, last_boxed
from nemotron_cascade.rewards.math import batch_math_reward, configure_pool, math_reward


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    """Two warm workers for the module (startup is paid once, not inside a timed case)."""
    pool = configure_pool(num_workers=2, timeout_s=5.0)
    pool.warm_up()
    yield pool
    pool.close()


# (response, ground truth, expected reward, reason)
CASES = [
    ("\\boxed{28}", "28", 1.0, "plain integer, right"),
    ("\\boxed{27}", "28", 0.0, "plain integer, wrong"),
    ("\\boxed{28.0}", "28", 1.0, "same number written as a decimal"),
    ("<think>3 of 4 parts</think>So \\boxed{\\frac{3}{4}}", "0.75", 1.0, "latex fraction equals decimal gold"),
    ("\\boxed{0.75}", "3/4", 1.0, "decimal equals slash-fraction gold"),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", 1.0, "dfrac and frac are the same value"),
    ("\\boxed{0.5}", "\\frac{1}{3}", 0.0, "different fraction"),
    ("\\boxed{1+x^2}", "x^2+1", 1.0, "commuted polynomial is equal"),
    ("\\boxed{x^2-1}", "x^2+1", 0.0, "different polynomial"),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0, "simplified radical"),
    ("<think>it is \\boxed{28}", "28", 0.0, "unclosed think block earns 0"),
    ("<think>the answer is \\boxed{28}</think>I am not sure.", "28", 0.0, "the answer only inside think"),
    ("\\boxed{3} or maybe \\boxed{4}", "3", 0.0, "hedge with two different values, one right"),
    ("\\boxed{\\frac{1}{2}} or \\boxed{\\frac{1}{3}}", "1/2", 0.0, "hedge with two latex values"),
    ("\\boxed{28}. Double-checking: \\boxed{28}", "28", 1.0, "same value boxed twice"),
    ("\\boxed{\\frac{1}{2}}, i.e. \\boxed{0.5}", "1/2", 1.0, "same value in two forms"),
    ("Adding them up, the total is 28.", "28", 1.0, "no box: plain final text"),
    ("The answer is $\\frac{1}{2}$.", "0.5", 1.0, "no box: latex in the final text"),
    ("The answer is 29.", "28", 0.0, "no box: wrong final text"),
    ("", "28", 0.0, "empty response"),
    ("\\boxed{}", "28", 0.0, "empty box"),
]


@pytest.mark.parametrize(("response", "gold", "expected", "reason"), CASES, ids=[c[3] for c in CASES])
def test_math_reward_table(response, gold, expected, reason):
    assert math_reward(response, gold) == expected, reason


def test_batch_matches_single_calls():
    responses = [c[0] for c in CASES]
    golds = [c[1] for c in CASES]
    assert batch_math_reward(responses, golds) == [c[2] for c in CASES]


def test_integer_fast_path_never_uses_the_pool(monkeypatch):
    def no_pool():
        raise AssertionError("plain integers must be compared in-process")

    monkeypatch.setattr(math_module, "get_pool", no_pool)
    assert batch_math_reward(["\\boxed{12}", "\\boxed{-3}", "13"], ["12", "-3", "12"]) == [1.0, 1.0, 0.0]


def test_pathological_input_times_out_quickly_and_the_pool_recovers():
    # A tower like 9^(9^(9^9)) makes sympy run for ever with Math-Verify's own timeout disabled.
    start = time.monotonic()
    assert math_reward("\\boxed{9^{9^{9^{9}}}}", "3", timeout_s=0.5) == 0.0
    assert time.monotonic() - start < 4.0  # 0.5 s budget + kill; generous for a loaded CI box
    assert math_reward("\\boxed{\\frac{3}{4}}", "0.75") == 1.0  # the replacement worker answers


def test_called_from_a_non_main_thread():
    results: list[object] = []

    def work():
        try:
            results.append(math_reward("\\boxed{\\frac{2}{4}}", "1/2"))
            results.append(batch_math_reward(["\\boxed{x+1}", "\\boxed{x}"], ["1+x", "1+x"]))
        except Exception as error:  # surfaced below: a thread swallows exceptions
            results.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert results == [1.0, [1.0, 0.0]]


@pytest.mark.parametrize(
    ("gold", "error"),
    [(None, TypeError), ("  ", ValueError), ([1], TypeError)],
    ids=["None gold is a data error", "blank gold is a data error", "list gold is a data error"],
)
def test_bad_ground_truth_is_loud(gold, error):
    with pytest.raises(error):
        math_reward("\\boxed{1}", gold)


def test_batch_length_mismatch():
    with pytest.raises(ValueError, match="2 responses but 1"):
        batch_math_reward(["1", "2"], ["1"])


# ---- answers.py helpers -------------------------------------------------------------------------
FINAL_ANSWER_CASES = [
    ("<think>a</think>  b ", "b", "text after the closed think block"),
    ("<think>a</think>b</think>c", "c", "after the last closing tag"),
    ("plain answer\n", "plain answer", "no think block: the whole text"),
    ("trace only</think>final", "final", "opener in the prompt: a closing tag still closes"),
    ("<think>never closed", None, "unclosed think block has no final answer"),
    ("<think>a</think>b<think>c", None, "a second think block left open"),
]


@pytest.mark.parametrize(
    ("response", "expected", "reason"), FINAL_ANSWER_CASES, ids=[c[2] for c in FINAL_ANSWER_CASES]
)
def test_final_answer(response, expected, reason):
    assert final_answer(response) == expected, reason


def test_boxed_helpers_balance_braces():
    text = "first \\boxed{\\frac{1}{2}} then \\boxed {x^{2}} and \\boxed{unclosed"
    assert boxed_all(text) == ["\\frac{1}{2}", "x^{2}"]
    assert last_boxed(text) == "x^{2}"
    assert last_boxed("no box") is None


def test_a_closed_pool_is_replaced_on_next_use():
    math_module.get_pool().close()
    assert math_reward("\\boxed{\\frac{1}{4}}", "0.25") == 1.0
