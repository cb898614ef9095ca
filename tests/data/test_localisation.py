"""Localisation: BM25 over a repository's files, merged with the model's guess; recall@k."""

from __future__ import annotations

import pytest

from nemotron_cascade.data import world
from nemotron_cascade.data.localisation import (
    bm25_ranking,
    code_tokens,
    document_tokens,
    guessed_paths,
    localise,
    recall_at_k,
)

# A synthetic repository larger than the world's three files: 20 modules, one function each, plus
# noise that every file shares (imports, docstrings) so that only the identifiers can decide.
_NAMES = ["parse_config", "loadUser", "HTTPServer", "render_page", "send_email", "hash_password",
          "retry_request", "open_socket", "merge_dicts", "flatten_list", "read_csv", "write_json",
          "compressBytes", "resize_image", "validate_token", "schedule_job", "cache_result",
          "format_date", "slugify_title", "count_words"]
BIG_REPO = {f"pkg/mod_{i:02d}.py": f'"""Module {i}: utilities."""\nimport os\n\n\ndef {name}(value):\n'
            f'    """Process the value and return it."""\n    return os.fspath(value)\n'
            for i, name in enumerate(_NAMES)}


def _row(issue: str, target: str, repo: dict | None = None, row_id: str = "t") -> dict:
    return {"id": row_id, "prompt": issue, "repo": repo or BIG_REPO, "file": target}


@pytest.mark.parametrize("text, expected, reason", [
    ("is_even(4)", ["is_even", "even"], "snake_case: whole identifier and parts; 'is' and numbers dropped"),
    ("isEven", ["iseven", "even"], "camelCase split"),
    ("HTTPServer", ["httpserver", "http", "server"], "acronym then word"),
    ("return x2", ["x2", "x", "2"], "keyword dropped; digits inside an identifier kept"),
    ("The add is wrong", ["add", "wrong"], "English stopwords dropped"),
    ("", [], "nothing to index"),
])
def test_code_tokens(text, expected, reason):
    assert code_tokens(text) == expected, reason


@pytest.mark.parametrize("issue, target, reason", [
    ("parse_config crashes on an empty file", "pkg/mod_00.py", "exact snake_case name"),
    ("load user fails when the id is missing", "pkg/mod_01.py", "words of a camelCase name"),
    ("The HTTP server hangs", "pkg/mod_02.py", "acronym split"),
    ("slugify_title keeps spaces", "pkg/mod_18.py", "a name late in the repository"),
    ("bug in mod_07", "pkg/mod_07.py", "the path is part of the document"),
])
def test_bm25_finds_the_file_in_a_larger_repo(issue, target, reason):
    assert bm25_ranking(_row(issue, target))[0] == target, reason


@pytest.mark.parametrize("guess, k, expected, reason", [
    (None, 2, ["pkg/mod_04.py"], "BM25 alone: the named function first"),
    (["pkg/mod_09.py"], 2, ["pkg/mod_04.py", "pkg/mod_09.py"], "BM25's best, then the model's guess"),
    (["pkg/mod_09.py"], 1, ["pkg/mod_04.py"], "one slot: the retriever's best, not the guess"),
    (["a/pkg/mod_09.py", "./pkg/mod_04.py"], 2, ["pkg/mod_04.py", "pkg/mod_09.py"], "diff/relative prefixes stripped"),
    (["missing.py", "pkg/mod_09.py"], 2, ["pkg/mod_04.py", "pkg/mod_09.py"], "guesses outside the repo ignored"),
    (["pkg/mod_04.py", "pkg/mod_04.py"], 2, ["pkg/mod_04.py"], "no duplicates"),
])
def test_localise_merges_guess_and_bm25(guess, k, expected, reason):
    top = localise(_row("send_email drops the subject", "pkg/mod_04.py"), k, guess)
    assert top[:len(expected)] == expected and len(top) == k and len(set(top)) == k, reason


def test_localise_interleaves_the_two_rankings():
    row = _row("send_email drops the subject", "pkg/mod_04.py")
    ranked = bm25_ranking(row)
    guess = [p for p in reversed(ranked) if p != ranked[0]][:2]   # two files BM25 ranks last
    rest = [p for p in ranked if p not in guess]
    assert localise(row, 4, guess) == [ranked[0], guess[0], rest[1], guess[1]]


def test_localise_returns_at_most_the_repository():
    row = world.generate_tasks("swe", "bench", 1, 0)[0]
    assert sorted(localise(row, 10)) == sorted(row["repo"])


@pytest.mark.parametrize("text, expected, reason", [
    ("The bug is in pkg/mod_03.py, maybe pkg/mod_01.py.", ["pkg/mod_03.py", "pkg/mod_01.py"], "order of mention"),
    ("--- a/pkg/mod_05.py\n+++ b/pkg/mod_05.py", ["pkg/mod_05.py"], "git prefixes"),
    ("see xpkg/mod_03.py or pkg/mod_03.pyc", [], "only whole paths"),
    ("no idea", [], "nothing named"),
])
def test_guessed_paths(text, expected, reason):
    assert guessed_paths(text, BIG_REPO) == expected, reason


def test_recall_on_world_benchmark():
    rows = world.generate_tasks("swe", "bench", 150, 0)
    assert len(rows) == 150
    assert recall_at_k(rows, 1) == 1.0  # the issue names the buggy function
    assert recall_at_k(rows, 3) == 1.0


def test_a_wrong_guess_costs_no_recall_when_bm25_is_right():
    rows = [_row(f"{name} returns the wrong value", path, row_id=str(i))
            for i, (path, name) in enumerate(zip(sorted(BIG_REPO), _NAMES))]
    wrong = [[sorted(BIG_REPO)[(i + 1) % len(rows)]] for i in range(len(rows))]
    assert recall_at_k(rows, 1) == 1.0
    assert recall_at_k(rows, 1, wrong) == 1.0          # BM25's best keeps the first slot
    assert recall_at_k(rows, 2, wrong) == 1.0
    vague = [_row("something returns the wrong value", path, row_id=str(i)) for i, path in enumerate(sorted(BIG_REPO))]
    right = [[r["file"]] for r in vague]                # a right guess fills the second slot
    assert recall_at_k(vague, 2, right) == 1.0


@pytest.mark.parametrize("call, match, reason", [
    (lambda: localise({"id": "r1", "prompt": "x"}, 1), "r1.*'repo'", "no repository"),
    (lambda: localise({"id": "r2", "prompt": "x", "repo": {"a.py": 3}}, 1), r"r2.*'repo'\['a.py'\]", "source not text"),
    (lambda: localise({"id": "r3", "repo": {"a.py": ""}}, 1), "r3.*'prompt'", "no issue"),
    (lambda: localise(_row("x", "pkg/mod_00.py"), 0), "k must be", "k < 1"),
    (lambda: recall_at_k([], 1), "at least one row", "empty benchmark"),
    (lambda: recall_at_k([_row("x", "nope.py", row_id="r4")], 1), "r4.*'file'", "target not in the repo"),
    (lambda: recall_at_k([_row("x", "pkg/mod_00.py")], 1, [None, None]), "2 entries for 1 rows", "guess count"),
])
def test_bad_input_names_the_row_and_field(call, match, reason):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_policys_guess_is_read_from_its_patch_and_merged_second(tiny_model, tokenizer):
    """policy_guesses runs the real generator; localise_with_guesses puts a guess after BM25's best."""
    from nemotron_cascade.data.localisation import localise_with_guesses, policy_guesses
    from nemotron_cascade.generation.hf import HFGenerator

    rows = world.generate_tasks("swe", "bench", 4, 0)
    guesses = policy_guesses(HFGenerator(tiny_model, tokenizer), rows, max_new_tokens=8)
    assert len(guesses) == 4 and all(set(g) <= set(r["repo"]) for g, r in zip(guesses, rows))
    wrong = [[next(p for p in sorted(r["repo"]) if p != r["file"])] for r in rows]
    localised, metrics = localise_with_guesses(rows, 2, wrong)
    assert [r["context_files"] for r in localised] == [[r["file"], g[0]] for r, g in zip(rows, wrong)]
    assert metrics["guess_top1"] == 0.0
    assert metrics["recall_at_2_bm25"] == 1.0 and metrics["recall_at_2_merged"] == 1.0  # BM25 fills in
    with pytest.raises(ValueError, match="3 guesses for 4 rows"):
        localise_with_guesses(rows, 2, wrong[:3])


def test_a_memoised_tokeniser_ranks_like_the_default():
    """Hydration passes ``doc_tokens`` memoised per blob (data.swe_repos): the ranking must not move."""
    seen: dict = {}

    def memo(path, source):
        return seen.setdefault((path, source), document_tokens(path, source))

    row = _row("send_email drops the subject", "pkg/mod_04.py")
    assert bm25_ranking(row, memo) == bm25_ranking(row) and len(seen) == len(BIG_REPO)
    assert bm25_ranking(row, memo) == bm25_ranking(row) and len(seen) == len(BIG_REPO), "second call: all memoised"
