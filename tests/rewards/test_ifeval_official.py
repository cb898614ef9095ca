"""The checkers against IFEval's official verdicts on GPT-4's 541 responses (834 instructions).

Data: ``fixtures/ifeval_official`` (``SOURCE.md`` there says where each file comes from and why these
are Google's own verdicts). Every instruction of every row is checked in strict and in loose mode: no
row may raise, instruction-level agreement must be at least 0.99, and the instructions that still
disagree must be exactly the expected set below, each with its reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nemotron_cascade.rewards.instruction_following import check_instruction

logger = logging.getLogger(__name__)

FIXTURES = Path(__file__).parent / "fixtures" / "ifeval_official"
MIN_AGREEMENT = 0.99

_NAMES_IN_CAPITALS = ("a list of 80 names in capitals: langdetect calls the text as written German (IFEval's "
                      "False) and the lower-cased text English; the project's language rule accepts either "
                      "casing, so correct all-capitals English is not failed for its case (rewards/ifeval/language.py)")
_RANDOM_LETTER = ("Google's build step swaps a non-letter for a random ASCII letter, so its verdict is a "
                  "draw; the project counts the given character literally")
# (key, instruction id) -> why the project's verdict differs from the official one
EXPECTED_DISAGREEMENTS = {
    "strict": {
        (1122, "keywords:letter_frequency"):
            f"letter '#', at least 4: the answer has 4 hash tags (True); {_RANDOM_LETTER}",
        (1129, "keywords:letter_frequency"): f"letter '!', at least 6: the answer has 10 '!' (True); {_RANDOM_LETTER}",
        (3456, "change_case:english_capital"): _NAMES_IN_CAPITALS,
    },
    "loose": {
        (1122, "keywords:letter_frequency"):
            f"letter '#', at least 4: the answer has 4 hash tags (True); {_RANDOM_LETTER}",
        # key 1129 agrees in loose mode: Google's second random draw happened to pass.
        (3456, "change_case:english_capital"): _NAMES_IN_CAPITALS,
    },
}


def _read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a bad line is reported with its file and line number."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path.name}:{number}: not JSON ({error})") from None
    return rows


def _official_rows(mode: str) -> list[dict]:
    """Each official result row joined with its input row (by prompt: results carry no key)."""
    inputs = {row["prompt"]: row for row in _read_jsonl(FIXTURES / "input_data.jsonl")}
    joined = []
    for result in _read_jsonl(FIXTURES / f"eval_results_{mode}.jsonl"):
        row = inputs.get(result["prompt"])
        if row is None:
            raise ValueError(f"eval_results_{mode}.jsonl: prompt {result['prompt'][:60]!r} not in input_data.jsonl")
        if row["instruction_id_list"] != result["instruction_id_list"]:
            raise ValueError(f"key {row['key']}: instruction ids differ between input and {mode} results")
        joined.append({**row, "response": result["response"], "official": result["follow_instruction_list"]})
    return joined


def _score(mode: str) -> dict:
    """Per-instruction comparison: totals, agreements, disagreements and the errors raised."""
    rows = _official_rows(mode)
    total, agree, disagreements, errors = 0, 0, {}, []
    for row in rows:
        for instruction_id, kwargs, official in zip(row["instruction_id_list"], row["kwargs"], row["official"]):
            total += 1
            try:
                ours = check_instruction(row["response"], instruction_id, kwargs, loose=mode == "loose")
            except Exception as error:  # noqa: BLE001 - every failure is collected and reported
                errors.append(f"key {row['key']} {instruction_id} {kwargs}: {type(error).__name__}: {error}")
                continue
            if ours == official:
                agree += 1
            else:
                disagreements[(row["key"], instruction_id)] = (official, ours)
    summary = (f"IFEval official {mode}: {agree}/{total} instruction verdicts agree ({agree / total:.4f}) "
               f"over {len(rows)} responses; {len(disagreements)} disagree: "
               + ", ".join(f"{k} {i}" for k, i in sorted(disagreements)))
    logger.info(summary)
    return {"rows": len(rows), "total": total, "agree": agree, "disagreements": disagreements,
            "errors": errors, "summary": summary}


@pytest.fixture(scope="module", params=["strict", "loose"])
def scored(request):
    return request.param, _score(request.param)


def test_every_official_row_is_scored_without_error(scored):
    mode, result = scored
    assert (result["rows"], result["total"]) == (541, 834), result["summary"]
    assert not result["errors"], f"{mode}: {len(result['errors'])} instructions raised:\n" + "\n".join(result["errors"])


def test_agreement_with_official_verdicts(scored):
    mode, result = scored
    assert result["agree"] / result["total"] >= MIN_AGREEMENT, result["summary"]


def test_remaining_disagreements_are_exactly_the_explained_ones(scored):
    mode, result = scored
    found = set(result["disagreements"])
    expected = set(EXPECTED_DISAGREEMENTS[mode])
    assert found == expected, (
        f"{result['summary']}\nunexplained: {sorted(found - expected)}"
        f"\nno longer disagreeing: {sorted(expected - found)}"
    )
