"""Preference pairs: real qualities, checked rows, a stable train/validation split; the chatty teacher."""

import pytest

from nemotron_cascade.data import preferences, world
from nemotron_cascade.rewards.instruction_following import if_reward


@pytest.fixture(scope="module")
def rows():
    return world.generate_tasks("general", "sft", 120, 0) + world.generate_tasks("instruction_following", "sft", 120, 0)


def test_pairs_cover_both_domains_and_split_stably(rows):
    pairs = preferences.build_pairs(rows, ["general", "instruction_following"], 100, 0.2, 0)
    assert {p["domain"] for p in pairs} == {"general", "instruction_following"}
    assert sum(p["domain"] == "general" for p in pairs) == 100  # capped per domain
    share = sum(p["split"] == "validation" for p in pairs) / len(pairs)
    assert 0.1 < share < 0.3
    again = preferences.build_pairs(rows, ["general", "instruction_following"], 100, 0.2, 0)
    assert [(p["id"], p["split"]) for p in again] == [(p["id"], p["split"]) for p in pairs]


def test_instruction_pairs_prefer_the_compliant_note(rows):
    """The rejected note drops one constraint and really breaks it; the chosen one follows all."""
    by_id = {r["id"]: r for r in rows}
    pairs = [p for p in preferences.build_pairs(rows, ["instruction_following"], None, 0.2, 0)]
    assert len(pairs) > 100
    for p in pairs:
        row = by_id[p["source_id"]]
        assert if_reward(p["chosen"], row["instruction_id_list"], row["kwargs"]) == 1.0
        assert if_reward(p["rejected"], row["instruction_id_list"], row["kwargs"]) == 0.0
        assert p["flaw"].split(" ")[1] in row["instruction_id_list"]


def test_general_pairs_are_not_a_length_tell(rows):
    """One pair per flaw and prompt; rejected answers are longer (verbose, repetitive), shorter
    (evasive) or about as long (one wrong detail); the world's ground truth agrees with each."""
    pairs = preferences.build_pairs(rows, ["general"], None, 0.2, 0)
    general = [r for r in rows if r["domain"] == "general"]
    assert len(pairs) == 4 * len(general)
    assert {p["flaw"] for p in pairs} == {"repetitive", "wrong", "verbose", "evasive"}
    shorter = sum(len(p["rejected"]) < len(p["chosen"]) for p in pairs)
    assert 0.2 < shorter / len(pairs) < 0.8
    by_id = {r["id"]: r for r in general}
    for p in pairs:
        topic = by_id[p["source_id"]]["topic"]
        assert world.preference_quality(p["chosen"], topic) > world.preference_quality(p["rejected"], topic), p
        if p["flaw"] == "wrong":  # the same kinds of facts, one of them with a false detail
            assert len(p["rejected"].split(".")) == len(p["chosen"].split(".")) and p["rejected"] != p["chosen"]
    splits = {}
    for p in pairs:  # all pairs of one prompt are on the same side of the split
        splits.setdefault(p["source_id"], set()).add(p["split"])
    assert all(len(s) == 1 for s in splits.values())


@pytest.mark.parametrize("pair, message, reason", [
    ({"id": "x", "prompt": "Tell me.", "chosen": "Same.", "rejected": " Same. "}, "identical",
     "identical texts (after stripping) prefer nothing"),
    ({"id": "x", "prompt": "Tell me.", "chosen": "", "rejected": "No."}, "'chosen' must be a non-empty string",
     "an empty chosen text"),
    ({"id": "x", "prompt": "Tell me.", "chosen": "Yes.", "rejected": None}, "'rejected' must be a non-empty string",
     "a missing rejected text"),
    ({"id": "x", "chosen": "Yes.", "rejected": "No."}, "'prompt' must be a non-empty string", "no prompt"),
])
def test_bad_pairs_raise_naming_source_and_row(pair, message, reason):
    good = {"id": "ok", "prompt": "Tell me.", "chosen": "Yes.", "rejected": "No."}
    with pytest.raises(preferences.PreferencePairError, match=message) as err:
        preferences.check_pairs([good, pair], "my_pairs.jsonl")
    assert "my_pairs.jsonl row 1 (id 'x')" in str(err.value), reason


def test_unknown_domain_without_rows_is_an_error(rows):
    with pytest.raises(ValueError, match=r"no preference pairs from domains \['math'\]"):
        preferences.build_pairs(rows, ["general", "math"], None, 0.2, 0)


def test_chatty_teacher_pads_its_share_of_general_answers(rows):
    general = [r for r in rows if r["domain"] == "general"]
    answers = [world.oracle_response(r, False, chatty_share={"general": 0.6}) for r in general]
    chatty = [a for a, r in zip(answers, general) if a != r["chosen"]]
    assert 0.45 < len(chatty) / len(general) < 0.75
    assert all(len(a) > len(r["chosen"]) for a, r in zip(answers, general) if a != r["chosen"])
    quality = [world.preference_quality(a, r["topic"]) for a, r in zip(answers, general)]
    assert {round(q, 3) for q in quality} == {1.0, 0.667}  # padding costs a third of the quality
    assert [world.oracle_response(r, False) for r in general] == [r["chosen"] for r in general]  # default: none


# --------------------------------------------------------------------------------------------
# Real rows (HF sources): a row gives only the pair it carries
def _source_rows(name: str) -> tuple[list[dict], list[dict]]:
    """(raw fixture rows, mapped tasks) of a source (tests/data/fixtures/sources/<name>.jsonl)."""
    import json
    from pathlib import Path

    from nemotron_cascade.data import sources

    path = Path(__file__).parent / "fixtures" / "sources" / f"{name}.jsonl"
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return raw, sources.map_rows(name, raw)[0]


def test_helpsteer3_pairs_follow_the_sign_of_overall_preference():
    """The card: overall_preference < 0 means Response 1 is better, > 0 Response 2; ties and
    multi-turn contexts are rejected by the mapper, so every other row gives exactly one pair."""
    raw, tasks = _source_rows("helpsteer3")
    kept = [r for r in raw if r["overall_preference"] != 0 and len(r["context"]) == 1]
    expected = [(r["context"][0]["content"], *((r["response1"], r["response2"]) if r["overall_preference"] < 0
                                              else (r["response2"], r["response1"]))) for r in kept]
    pairs = preferences.build_pairs(tasks, ["general"], None, 0.2, 0)
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == expected
    assert [p["source_id"] for p in pairs] == [t["id"] for t in tasks]
    strengths = [abs(r["overall_preference"]) for r in kept]
    assert [p["flaw"] for p in pairs] == [f"human preference of helpsteer3 (strength {n} of 3)" for n in strengths]
    assert any(r["overall_preference"] > 0 for r in kept) and any(r["overall_preference"] < 0 for r in kept)


def test_real_rows_without_a_pair_give_none_and_leave_the_world_pairs_unchanged(rows):
    """SFT-only rows (empty rejected) give no pair; the world rows' pairs are the same with or
    without real rows beside them (the base profile's pairs do not move)."""
    _, chat_rows = _source_rows("llama_nemotron_chat")
    _, helpsteer = _source_rows("helpsteer3")
    assert all(world.preference_pairs(r) == [] for r in chat_rows)
    alone = preferences.build_pairs(rows, ["general", "instruction_following"], None, 0.2, 0)
    mixed = preferences.build_pairs(chat_rows + rows + helpsteer, ["general", "instruction_following"], None, 0.2, 0)
    assert [p for p in mixed if not p["source_id"].startswith("helpsteer3-")] == alone
    assert {p["source_id"] for p in mixed} - {p["source_id"] for p in alone} == {t["id"] for t in helpsteer}


def test_a_domain_whose_real_rows_give_no_pair_is_an_error():
    """Real instruction-following rows carry constraints, no responses: asking for their pairs
    (the base profile's preferences.domains) must fail, naming why, not train on nothing."""
    _, if_rows = _source_rows("if_multi_constraints")
    _, helpsteer = _source_rows("helpsteer3")
    with pytest.raises(ValueError, match=r"no preference pairs from domains \['instruction_following'\] "
                                         r"\(instruction_following: 2 rows, none gives a pair"):
        preferences.build_pairs(helpsteer + if_rows, ["general", "instruction_following"], None, 0.2, 0)
    assert len(preferences.build_pairs(helpsteer + if_rows, ["general"], None, 0.2, 0)) == len(helpsteer)
