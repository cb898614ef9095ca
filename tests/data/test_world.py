"""The embedded world: deterministic, disjoint splits, and a teacher the verifiers accept."""

import collections

import pytest

from nemotron_cascade import chat
from nemotron_cascade.data import world
from nemotron_cascade.data.world import swe
from nemotron_cascade.rewards.registry import get_reward

VERIFIED = ["math", "code", "science", "instruction_following", "tool_calling", "swe"]


@pytest.mark.parametrize("domain", world.DOMAINS)
def test_generation_is_deterministic(domain):
    assert world.generate_tasks(domain, "sft", 15, 3) == world.generate_tasks(domain, "sft", 15, 3)


@pytest.mark.parametrize("domain", world.DOMAINS)
def test_splits_are_disjoint_by_problem(domain):
    ids = {s: {r["id"] for r in world.generate_tasks(domain, s, 60, 0)} for s in world.SPLITS}
    assert not ids["sft"] & ids["bench"] and not ids["rl"] & ids["bench"] and not ids["sft"] & ids["rl"]


def test_instruction_following_benchmark_holds_unseen_constraint_combinations():
    def combos(split):
        return {str((r["instruction_id_list"], r["kwargs"])) for r in world.generate_tasks(
            "instruction_following", split, 400, 0)}
    assert not combos("bench") & combos("sft")


@pytest.mark.parametrize("domain", VERIFIED)
@pytest.mark.parametrize("thinking", [True, False])
def test_oracle_teacher_scores_full_marks_with_the_verifiers(domain, thinking):
    rows = world.generate_tasks(domain, "sft", 25, 0)
    responses = [world.oracle_response(r, thinking) for r in rows]
    assert get_reward(domain)(responses, rows) == [1.0] * len(rows)


def test_preference_quality_ranks_chosen_above_rejected_for_every_flaw():
    rows = world.generate_tasks("general", "sft", 200, 0)
    flaws = {r["flaw"] for r in rows}
    assert flaws == {"repetitive", "wrong", "verbose", "evasive"}
    for r in rows:
        chosen, rejected = world.preference_quality(r["chosen"], r["topic"]), world.preference_quality(
            r["rejected"], r["topic"])
        assert chosen == 1.0 and rejected < 0.6, (r["flaw"], r["rejected"])


def test_preference_is_not_a_length_tell():
    rows = world.generate_tasks("general", "sft", 300, 0)
    shorter_rejected = [r for r in rows if len(r["rejected"]) <= len(r["chosen"])]
    assert 0.2 < len(shorter_rejected) / len(rows) < 0.8


def test_unknown_domain_is_named():
    with pytest.raises(KeyError, match="poetry"):
        world.generate_tasks("poetry", "sft", 1, 0)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("domain, tell", [("code", "lambda" )])
def test_terse_teacher_takes_its_share_of_rows_and_stays_correct(domain, tell, share):
    rows = world.generate_tasks(domain, "sft", 80, 0)
    responses = [world.oracle_response(r, True, terse_share={domain: share}) for r in rows]
    plain = [world.oracle_response(r, True) for r in rows]
    terse = sum(a != b for a, b in zip(responses, plain)) / len(rows)
    assert abs(terse - share) < 0.15
    assert get_reward(domain)(responses, rows) == [1.0] * len(rows)  # the teacher is still right
    # the choice is a property of the row, not of the call
    assert responses == [world.oracle_response(r, True, terse_share={domain: share}) for r in rows]


def test_teacher_options_are_checked_by_name():
    from nemotron_cascade.generation.oracle import make_teacher

    row = next(r for r in world.generate_tasks("math", "sft", 20, 0) if r["teacher_terse"])
    assert world.MENTAL_MATH_TRACE in make_teacher("oracle", terse_share={"math": 1.0})(row, True)
    with pytest.raises(TypeError, match="bad options"):
        make_teacher("oracle", temperature=0.3)


def test_swe_prompt_keeps_the_localised_files_that_fit_the_budget():
    """The input-context curriculum: best-ranked files first, as many as fit, never none."""
    row = world.generate_tasks("swe", "rl", 1, 0)[0]
    others = [p for p in sorted(row["repo"]) if p != row["file"]]
    row = {**row, "context_files": [row["file"], *others]}
    count = len  # characters stand in for tokens here
    full = world.render_prompt(row, True, 10_000, count)
    assert all(f"[{p}]" in full for p in row["repo"])
    assert full == world.render_prompt(row, True)  # a budget that fits everything changes nothing
    two = world.render_prompt(row, True, len(full) - 1, count)
    assert f"[{row['file']}]" in two and f"[{others[0]}]" in two and f"[{others[1]}]" not in two
    one = world.render_prompt(row, True, 1, count)  # nothing fits: the best file alone
    assert f"[{row['file']}]" in one and not any(f"[{p}]" in one for p in others)
    math_row = world.generate_tasks("math", "rl", 1, 0)[0]
    assert world.render_prompt(math_row, True, 1, count) == world.render_prompt(math_row, True)
    with pytest.raises(ValueError, match="needs count_tokens"):
        world.render_prompt(row, True, 100)


def test_zero_tasks_returns_at_once():
    from nemotron_cascade.data import world

    assert world.generate_tasks("math", "sft", 0, 0) == []


def test_swe_numbered_style_renames_the_modules_without_a_symbol_map():
    """``numbered`` style: the modules are mod<k> (the same problem, id, split,
    file contents and a gold patch on the renamed file), but the prompt has no map and the trace
    names the file from the file header form ``\\n[path]`` of the prompt. ``plain`` is the task with
    the modules' own names, as drawn; ``row`` the world's task."""
    plain = next(world.iter_tasks("swe", 3, "rl", generate=swe.named_task))
    row = swe.number_modules(plain)
    assert row == world.generate_tasks("swe", "rl", 1, 3)[0]
    assert (row["id"], row["split"], row["prompt"]) == (plain["id"], plain["split"], plain["prompt"])
    assert "symbol_map" not in row and "Symbols:" not in world.swe_prompt(row)
    assert all(p.startswith("mod") for p in row["repo"]) and row["repo"][row["file"]] == plain["repo"][plain["file"]]
    assert row["gold_patch"].startswith(f"--- a/{row['file']}\n+++ b/{row['file']}\n")
    assert f"\n[{row['file']}]\n" in world.swe_prompt(row)
    trace = chat.split_response(world.oracle_response(row, True)).thinking.strip()
    assert trace.endswith(f"is in:\n[{row['file']}]")
    assert get_reward("swe")([world.oracle_response(row, True)], [row]) == [1.0]


# math: executable (every line in columns) ------------------------------------------------------
def _line_value(line: str) -> tuple[int, int, str, int]:
    """``"a + b: ...; so c"`` -> (a, b, op, c)."""
    head, result = line.split(":")[0], int(line.rsplit("so ", 1)[1])
    a, op, b = head.split()
    return int(a), int(b), op, result


@pytest.mark.parametrize("split", world.SPLITS)
def test_executable_math_works_every_line_in_columns(split):
    rows = world.generate_tasks("math", split, 300, 0)
    boxes = [r for r in rows if "boxes" in r["prompt"]]
    assert 0.2 < len(boxes) / len(rows) < 0.4  # the multiplication stories are still there ...
    for r in rows:
        assert all("*" not in line for line in r["steps"]), r["steps"]  # ... worked as additions
        for line in r["steps"]:
            a, b, op, c = _line_value(line)
            assert c == (a + b if op == "+" else a - b), line  # every line is right arithmetic
        assert _line_value(r["steps"][-1])[3] == int(r["answer"])
    for r in boxes:  # k boxes of m: m + m (then 2m + m), i.e. the product
        words = r["prompt"].split()
        k, m = int(words[2]), int(words[5])
        assert k in (2, 3) and len([ln for ln in r["steps"] if ln.startswith(f"{m} + {m}:")]) == 1
        assert _line_value(r["steps"][k - 2])[3] == k * m


@pytest.mark.parametrize("row_steps, in_class, why", [
    (["45 - 26: 5 < 6, borrow, 15 - 6 = 9; 4 - 2 - 1 = 1; so 19"], True, "one step, a subtraction"),
    (["45 + 26: 5 + 6 = 11, carry 1; 4 + 2 + 1 = 7; so 71"], True, "one step, an addition"),
    (["14 + 14: 4 + 4 = 8; 1 + 1 = 2; so 28", "28 - 5: 8 - 5 = 3; 2 - 0 = 2; so 23"], False, "two steps"),
    (["45 + 26: 5 + 6 = 11, carry 1; 4 + 2 + 1 = 7; so 71", "71 - 5: 1 < 5, borrow, 11 - 5 = 6; 7 - 0 - 1 = 6; so 66"],
     False, "two steps, the second a subtraction"),
])
def test_executable_math_terse_rows_are_a_rule_the_prompt_shows(row_steps, in_class, why):
    rows = [r for r in world.generate_tasks("math", "sft", 400, 0) if r["steps"] == row_steps
            or (len(r["steps"]) == len(row_steps) and all((" - " in a) == (" - " in b)
                                                           for a, b in zip(r["steps"], row_steps)))]
    assert rows, why
    for r in rows:
        assert r["teacher_terse"] is in_class, why
        assert world.is_terse(r, 1.0) is in_class, why       # the whole class at share 1 and nothing else
        assert world.is_terse(r, 0.0) is False, why          # no terse rows at share 0
        response = world.oracle_response(r, True, terse_share={"math": 1.0})
        assert (world.MENTAL_MATH_TRACE in response) is in_class, why
    assert get_reward("math")([world.oracle_response(r, True, terse_share={"math": 0.7}) for r in rows],
                              rows) == [1.0] * len(rows)


def test_executable_math_terse_share_is_a_share_of_the_class():
    rows = world.generate_tasks("math", "sft", 2000, 0)
    cls = [r for r in rows if r["teacher_terse"]]
    assert 0.3 < len(cls) / len(rows) < 0.4                  # one-step problems: 0.7 * 0.5 of the rows
    terse = [r for r in cls if world.is_terse(r, 0.7)]
    assert 0.65 < len(terse) / len(cls) < 0.75               # the share applies inside the class ...
    assert not any(world.is_terse(r, 0.7) for r in rows if not r["teacher_terse"])  # ... and only there


# science: the check trace -------------------------------------------------------------------------
@pytest.mark.parametrize("split", world.SPLITS)
def test_science_check_subtracts_units_digits_until_the_worked_value(split):
    # (the same problems, answers and first two trace lines as the retired plain style: tested
    # with the plain rendering in tests/data/test_probe_science_trace.py)
    check = world.generate_tasks("science", split, 200, 0)
    for r in check:
        options = r["prompt"].split("Options:\n")[1].split("\nAnswer")[0].splitlines()
        assert options == [f"({world.LETTERS[i]}) {c}" for i, c in enumerate(r["choices"])]  # letter first
        lines = r["trace"].splitlines()
        k = world.LETTERS.index(r["answer"])
        right = int(r["choices"][k].split()[0])
        checks = lines[2:]
        assert len(checks) == k + 1  # stops at the first match
        for i, (line, option) in enumerate(zip(checks, options)):
            value = int(option.split()[1])
            head, diff = line.rsplit(" = ", 1)
            assert head.startswith(f"{option}: {right % 10} ") and head.endswith(f" {value % 10}"), line
            assert (diff == "0, so the answer") == (i == k) and int(diff.split(",")[0]) == (right - value) % 10
    assert get_reward("science")([world.oracle_response(r, True) for r in check], check) == [1.0] * len(check)


@pytest.mark.parametrize("x, y, line, reason", [
    (4, 2, "4 - 2 = 2", "no borrow"),
    (4, 4, "4 - 4 = 0", "equal digits: the zero that marks the right option"),
    (2, 7, "2 < 7, borrow, 12 - 7 = 5", "borrow, as the units column of math's column subtraction"),
    (0, 9, "0 < 9, borrow, 10 - 9 = 1", "borrow from a zero"),
])
def test_units_sub_is_math_units_column(x, y, line, reason):
    assert world.units_sub(x, y) == line, reason
    assert world.column_sub(50 + x, 10 + y).split(": ", 1)[1].startswith(line), reason  # the same words


# science options: no two share a units digit -----------------------------------------------------
@pytest.mark.parametrize("split", world.SPLITS)
def test_science_options_have_distinct_units_digits_and_hold_the_worked_value(split):
    for r in world.generate_tasks("science", split, 300, 0):
        values = [int(c.split()[0]) for c in r["choices"]]
        assert len(values) == 4 and min(values) > 1, r["id"]
        assert len({v % 10 for v in values}) == 4, (r["id"], values)  # a units digit names one option
        right = values[world.LETTERS.index(r["answer"])]
        assert r["trace"].splitlines()[1].endswith(str(right)), r["id"]  # the worked value is an option


def test_science_answer_letters_are_balanced():
    letters = collections.Counter(r["answer"] for r in world.generate_tasks("science", "sft", 1000, 0))
    assert set(letters) == set(world.LETTERS) and min(letters.values()) > 200, letters
