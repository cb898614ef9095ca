"""Real SWE tasks hydrated from git (``data.swe_repos``) on local repositories this module makes: a
SWE-bench-style row at its ``base_commit``, a SWE-smith-style row at the branch its ``instance_id``
names, from a mirror directory or a ``file://`` URL template, cached; localisation on the hydrated
tree; the data-curation node end to end. And the SWE-smith fixture against its dataset card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from swe_git import bare_clone, commit_files, git, init_repo, mirror_for_tasks  # tests/

from nemotron_cascade.config import config_from_params
from nemotron_cascade.data import localisation, sources, world
from nemotron_cascade.data.swe_repos import RepoCache, RepoError, RepoSourceConfig, localise_rows
from nemotron_cascade.pipelines.data_curation.nodes import localise_swe_tasks

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "sources"

# https://huggingface.co/datasets/SWE-bench/SWE-smith (and the SWE-smith-<language> cards of the
# same collection): the card's features since mid-2025, in its order; there is no base_commit.
SWE_SMITH_CARD_COLUMNS = ["instance_id", "patch", "FAIL_TO_PASS", "PASS_TO_PASS", "image_name", "repo",
                          "problem_statement"]


def test_swe_smith_fixture_has_exactly_the_card_columns():
    rows = [json.loads(line) for line in (FIXTURES / "swe_smith.jsonl").read_text().splitlines() if line.strip()]
    assert rows and all(list(row) == SWE_SMITH_CARD_COLUMNS for row in rows)
    task = sources.map_swe_smith(rows[0])
    assert "base_commit" not in task and task["branch"] == rows[0]["instance_id"], "checked out at its branch"
    assert sources.check_real_swe_task(task) is None


WHERE_MISSING = "missing field 'base_commit' or 'branch' (where to check the repository out)"


@pytest.mark.parametrize("fields, problem, reason", [
    ({"base_commit": "abc"}, None, "SWE-bench: a commit"),
    ({"branch": "o__n.1234abcd.x"}, None, "SWE-smith: a branch"),
    ({}, WHERE_MISSING, "nowhere to check out"),
    ({"base_commit": " ", "branch": ""}, WHERE_MISSING, "blank is missing"),
])
def test_real_swe_rows_need_a_commit_or_a_branch(fields, problem, reason):
    task = {"repo_name": "o/n", "file": "a.py", "files": ["a.py"], **fields}
    assert sources.check_real_swe_task(task) == problem, reason


# --------------------------------------------------------------------------------------------
# The repositories: acme/calc with two commits on main (the second fixes add() and adds extra.py)
# and a SWE-smith branch off the second that breaks shout(); served as SWE-smith's mirror
# swesmith/acme__calc.abcd1234 too.
BUGGY_CALC = '"""Arithmetic helpers."""\n\n\ndef add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n'
FIXED_CALC = BUGGY_CALC.replace("a - b", "a + b")
TOOLS = '"""String tools."""\n\n\ndef shout(text):\n    return text.upper()\n'
FILES = {
    "calc.py": BUGGY_CALC,
    "pkg/tools.py": TOOLS,
    "pkg/util.py": '"""Slugs."""\n\n\ndef slugify_title(title):\n    return title.lower().replace(" ", "-")\n',
    "docs/guide.rst": "Guide\n=====\n\nadd() adds two numbers; shout() upper-cases text.\n",
    "logo.gif": b"GIF89a\x01\x00\x01\x00 add shout",   # valid UTF-8, but NUL bytes: binary
    "big.py": "# add shout\n" + "VALUE = 1\n" * 600,   # 6 kB: over the tests' cap
    "latin1.py": "# caf\xe9 add\n".encode("latin-1"),   # not UTF-8
}
BRANCH = "acme__calc.abcd1234.func_basic__shout01"
SMITH_REPO = "swesmith/acme__calc.abcd1234"
CAP = 4096


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """The source repository, a mirror directory in both accepted layouts, a directory for a
    ``file://`` URL template, and the ids of the commits and the SWE-smith branch."""
    root = tmp_path_factory.mktemp("swe_git")
    src = init_repo(root / "src" / "calc")
    (src / "calc_link.py").symlink_to("calc.py")  # committed with the files below
    base = commit_files(src, FILES, "base: add() is broken")
    fix = commit_files(src, {"calc.py": FIXED_CALC, "extra.py": "def extra():\n    return 0\n"}, "fix add()")
    git(src, "checkout", "-q", "-b", BRANCH)
    bug = commit_files(src, {"pkg/tools.py": TOOLS.replace("upper", "lower")}, "SWE-smith bug")
    git(src, "checkout", "-q", "main")
    mirror = root / "mirror"
    shutil.copytree(src, mirror / "acme" / "calc", symlinks=True)               # <owner>/<name>, a work tree
    bare_clone(src, mirror / "swesmith__acme__calc.abcd1234.git")             # <owner>__<name>.git, bare
    served = root / "served"
    bare_clone(src, served / "acme__calc.git")
    bare_clone(src, served / "swesmith__acme__calc.abcd1234.git")
    return {"src": src, "mirror": mirror, "url": f"file://{served}/{{owner}}__{{name}}.git",
            "base": base, "fix": fix, "bug": bug, "bug_patch": git(src, "diff", "main", BRANCH),
            "fix_patch": git(src, "diff", base, fix, "--", "calc.py")}


def _bench_row(repos, **extra) -> dict:
    """A SWE-bench train row (the card's columns) at the buggy base commit, mapped."""
    raw = {"repo": "acme/calc", "instance_id": "acme__calc-1", "base_commit": repos["base"],
           "patch": repos["fix_patch"] + "\n", "test_patch": "",
           "problem_statement": "add in calc subtracts: add(2, 3) is -1",
           "hints_text": "", "created_at": "2024-01-01", "version": "1.0", "FAIL_TO_PASS": '["test_add"]',
           "PASS_TO_PASS": "[]", "environment_setup_commit": repos["base"], **extra}
    tasks, rejects = sources.map_rows("swe_bench_train", [raw])
    assert not rejects, rejects
    return tasks[0]


def _smith_row(repos, **extra) -> dict:
    """A SWE-smith row (exactly the card's columns) whose branch breaks shout(), mapped."""
    raw = {"instance_id": BRANCH, "patch": repos["bug_patch"] + "\n", "FAIL_TO_PASS": ["test_shout"],
           "PASS_TO_PASS": [], "image_name": "swesmith.x86_64.acme_1776_calc.abcd1234", "repo": SMITH_REPO,
           "problem_statement": "shout in tools returns lower case text", **extra}
    tasks, rejects = sources.map_rows("swe_smith", [raw])
    assert not rejects, rejects
    return tasks[0]


def _config(repos, tmp_path, where: str, **kw) -> RepoSourceConfig:
    origin = {"mirror": {"mirror": str(repos["mirror"])}, "url": {"url": repos["url"]}}[where]
    return RepoSourceConfig(**origin, cache_dir=str(tmp_path / "cache"), max_file_bytes=CAP, **kw)


# --------------------------------------------------------------------------------------------
# Hydration
@pytest.mark.parametrize("kind, where, reason", [
    ("bench", "mirror", "base_commit from <mirror>/<owner>/<name> (a work tree)"),
    ("smith", "mirror", "instance_id branch from <mirror>/<owner>__<name>.git (bare)"),
    ("bench", "url", "base_commit through a file:// URL template"),
    ("smith", "url", "instance_id branch through a file:// URL template"),
])
def test_hydration_reads_the_tree_at_the_commit_or_branch(repos, tmp_path, kind, where, reason):
    row = _bench_row(repos) if kind == "bench" else _smith_row(repos)
    (out,) = localise_rows([row], 2, _config(repos, tmp_path, where, keep_files=50))
    files = out["repo"]
    if kind == "bench":  # the base commit: add() still broken, the fix's new file not there yet
        assert out["checkout"] == repos["base"] and files["calc.py"] == BUGGY_CALC and "extra.py" not in files, reason
        assert files["pkg/tools.py"] == TOOLS, reason
    else:  # the branch: add() fixed, shout() broken
        assert out["checkout"] == repos["bug"] and files["calc.py"] == FIXED_CALC and "extra.py" in files, reason
        assert "text.lower()" in files["pkg/tools.py"], reason
    assert out["file"] in files and out["context_files"][0] == out["file"], reason
    assert {"prompt", "gold_patch", "instance_id", "split", "id"} <= set(out) and out["repo_name"] == row["repo_name"]


@pytest.mark.parametrize("path, kept, reason", [
    ("docs/guide.rst", True, "text of any suffix when no suffixes are set"),
    ("logo.gif", False, "binary: a NUL byte"),
    ("latin1.py", False, "not UTF-8"),
    ("big.py", False, "over max_file_bytes"),
    ("calc_link.py", False, "a symlink, not a regular file"),
])
def test_only_text_regular_files_under_the_cap_are_read(repos, tmp_path, path, kept, reason):
    (out,) = localise_rows([_bench_row(repos)], 2, _config(repos, tmp_path, "mirror", keep_files=50))
    assert (path in out["repo"]) is kept, reason


@pytest.mark.parametrize("files, suffixes, expected, reason", [
    (["calc.py"], (".py",), {"calc.py", "pkg/tools.py", "pkg/util.py"}, "suffixes filter what BM25 ranks"),
    (["calc.py", "docs/guide.rst"], (".py",), {"calc.py", "pkg/tools.py", "pkg/util.py", "docs/guide.rst"},
     "a gold file is kept whatever its suffix"),
    (["calc.py", "big.py"], (".py",), {"calc.py", "pkg/tools.py", "pkg/util.py", "big.py"},
     "a gold file is kept whatever its size"),
])
def test_suffixes_and_gold_files(repos, tmp_path, files, suffixes, expected, reason):
    row = {**_bench_row(repos), "files": files}
    (out,) = localise_rows([row], 2, _config(repos, tmp_path, "mirror", keep_files=50, suffixes=suffixes))
    assert set(out["repo"]) == expected, reason


def test_a_row_keeps_its_bm25_candidates_and_gold_files(repos, tmp_path):
    row = _smith_row(repos)
    (out,) = localise_rows([row], 1, _config(repos, tmp_path, "mirror", keep_files=2))
    assert len(out["repo"]) == 2 and out["file"] == "pkg/tools.py" in out["repo"]
    assert out["context_files"] == ["pkg/tools.py"]
    assert localisation.recall_at_k([out], 1) == 1.0  # RL-time localisation still finds it in the kept files


def test_the_cache_is_reused_and_never_cloned_twice(repos, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(repos["mirror"], mirror, symlinks=True)
    config = RepoSourceConfig(mirror=str(mirror), cache_dir=str(tmp_path / "cache"), max_file_bytes=CAP)
    cache = RepoCache(config)
    first = localise_rows([_bench_row(repos), _bench_row(repos, instance_id="acme__calc-2")], 2, config, cache)
    assert cache.clones == 1 and sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["acme__calc.git"]
    shutil.rmtree(mirror)  # the origin is gone: a second run reads the cache alone
    again = RepoCache(config)
    assert localise_rows([_bench_row(repos)], 2, config, again) == first[:1] and again.clones == 0


def test_a_blob_the_clone_lacks_is_left_out(repos, tmp_path):
    config = _config(repos, tmp_path, "mirror", keep_files=50)
    localise_rows([_bench_row(repos)], 2, config)
    sha = git(repos["src"], "rev-parse", f"{repos['base']}:pkg/util.py")
    (tmp_path / "cache" / "acme__calc.git" / "objects" / sha[:2] / sha[2:]).unlink()  # a damaged or partial clone
    (out,) = localise_rows([_bench_row(repos)], 2, config)
    assert "pkg/util.py" not in out["repo"] and out["repo"]["calc.py"] == BUGGY_CALC


def test_a_branch_made_after_the_clone_is_fetched_into_the_cache(repos, tmp_path):
    src = tmp_path / "calc"
    shutil.copytree(repos["src"], src, symlinks=True)
    config = RepoSourceConfig(url=f"file://{tmp_path}/{{name}}", cache_dir=str(tmp_path / "cache"), max_file_bytes=CAP)
    localise_rows([_bench_row(repos)], 2, config)  # an earlier run cloned it
    git(src, "checkout", "-q", "-b", "acme__calc.abcd1234.later", "main")
    later = commit_files(src, {"pkg/util.py": "def slugify_title(title):\n    return title\n"}, "later bug")
    row = {**_bench_row(repos), "base_commit": None, "branch": "acme__calc.abcd1234.later", "files": ["pkg/util.py"],
           "file": "pkg/util.py", "prompt": "slugify_title keeps spaces"}
    cache = RepoCache(config)
    (out,) = localise_rows([row], 2, config, cache)
    assert out["checkout"] == later and cache.clones == 0 and out["context_files"][0] == "pkg/util.py"


# --------------------------------------------------------------------------------------------
# Errors name the instance and what was looked for
@pytest.mark.parametrize("change, where, words, reason", [
    ({"repo_name": "acme/missing"}, "mirror", ["'acme__calc-1'", "repository 'acme/missing' not found",
                                               "no url template set"], "no such repository in the mirror"),
    ({"repo_name": "acme/missing"}, "url", ["'acme__calc-1'", "could not be cloned from file://"],
     "the URL has no such repository"),
    ({"base_commit": "0" * 40}, "mirror", ["'acme__calc-1'", f"commit '{'0' * 40}' not found", "'acme/calc'"],
     "no such commit"),
    ({"base_commit": None, "branch": "acme__calc.abcd1234.nope"}, "url",
     ["'acme__calc-1'", "branch 'acme__calc.abcd1234.nope' not found"], "no such branch"),
    ({"repo_name": "calc"}, "mirror", ["'acme__calc-1'", "'calc' is not 'owner/name'"], "not owner/name"),
    ({"base_commit": None}, "mirror", ["'acme__calc-1'", "neither 'base_commit' nor 'branch'"], "nowhere to look"),
])
def test_missing_repository_commit_or_branch_names_the_instance(repos, tmp_path, change, where, words, reason):
    row = {**_bench_row(repos), **change}
    with pytest.raises(RepoError) as error:
        localise_rows([row], 2, _config(repos, tmp_path, where))
    assert all(w in str(error.value) for w in words), (reason, str(error.value))


def test_rows_without_files_need_hydration_switched_on(repos):
    with pytest.raises(RepoError, match=r"acme__calc-1.*set params:swe_repositories.mirror or .url"):
        localise_rows([_bench_row(repos)], 2, RepoSourceConfig())


@pytest.mark.parametrize("params, words, reason", [
    ({"url": "https://github.com/x.git"}, "names no repository", "a URL template must name the repository"),
    ({"keep_files": 0}, "keep_files must be a positive int", "nothing kept"),
    ({"mirrors": "data"}, "unknown key(s) ['mirrors']", "a typo is named"),
])
def test_bad_repository_parameters_are_named(params, words, reason):
    with pytest.raises(ValueError) as error:
        config_from_params(RepoSourceConfig, params, "params:swe_repositories")
    assert words in str(error.value), reason


# --------------------------------------------------------------------------------------------
# The data-curation node
def _params(profile: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / profile / "parameters_data_curation.yml").read_text())


def test_profiles_switch_hydration_off_in_base_and_on_in_gpu():
    base, gpu = _params("base")["swe_repositories"], _params("gpu")["swe_repositories"]
    assert not config_from_params(RepoSourceConfig, base).enabled, "world rows carry their repository"
    merged = config_from_params(RepoSourceConfig, {**base, **gpu})
    assert merged.enabled and merged.url == "https://github.com/{repo}.git" and merged.cache_dir.startswith("data/")


def test_the_node_leaves_world_rows_as_they_were():
    rows = world.generate_tasks("swe", "bench", 6, 0) + world.generate_tasks("math", "sft", 2, 0)
    expected = [{**r, "context_files": localisation.localise(r, 2)} for r in rows if r["domain"] == "swe"]
    assert localise_swe_tasks(rows, 2, _params("base")["swe_repositories"]) == expected


def test_the_node_hydrates_swe_bench_and_swe_smith_rows_end_to_end(repos, tmp_path):
    world_rows = world.generate_tasks("swe", "rl", 2, 0)
    rows = [world_rows[0], _bench_row(repos), _smith_row(repos), world_rows[1]]
    params = {**_params("base")["swe_repositories"], "url": repos["url"], "cache_dir": str(tmp_path / "cache"),
              "suffixes": [".py"], "keep_files": 3}
    out = localise_swe_tasks(rows, 2, params)
    assert [r["id"] for r in out] == [r["id"] for r in rows], "order kept"
    assert out[0] == {**world_rows[0], "context_files": localisation.localise(world_rows[0], 2)}
    bench, smith = out[1], out[2]
    assert bench["checkout"] == repos["base"] and smith["checkout"] == repos["bug"]
    for row in (bench, smith):
        assert row["context_files"][0] == row["file"] and len(row["repo"]) <= 3
        assert set(row["context_files"]) <= set(row["repo"]) and row["file"] in row["repo"]
        json.dumps(row)  # the jsonl dataset can write it
    assert "+    return text.upper()" in smith["gold_patch"], "the fix is the reversed bug patch"
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached == ["acme__calc.git", "swesmith__acme__calc.abcd1234.git"], "one clone per repository"


SWE_FIXTURES = sorted(name for name, spec in {**sources.SOURCES, **sources.BENCHMARKS}.items()
                      if spec.domain == "swe" and (FIXTURES / f"{name}.jsonl").exists())


def test_every_swe_fixture_row_hydrates_from_a_mirror_built_for_it(tmp_path):
    """What a gpu-profile run on the fixtures needs: a mirror with each row's repository; commits
    cannot be forged, so base_commit rows are pointed at the commits the mirror holds."""
    tasks = [t for name in SWE_FIXTURES
             for t in sources.map_rows(name, [json.loads(line) for line in
                                              (FIXTURES / f"{name}.jsonl").read_text().splitlines() if line])[0]]
    commits = mirror_for_tasks(tasks, tmp_path / "mirror")
    rows = [{**t, "base_commit": commits[t["instance_id"]]} if t.get("base_commit") else t for t in tasks]
    config = RepoSourceConfig(mirror=str(tmp_path / "mirror"), cache_dir=str(tmp_path / "cache"))
    out = localise_rows(rows, 2, config)
    assert {"swe_bench_train", "swe_smith"} <= set(SWE_FIXTURES) and len(out) == len(tasks) > 2
    for row in out:
        assert row["file"] in row["repo"] and row["context_files"], row["id"]
        assert row["checkout"] == commits[row["instance_id"]], "a branch row reads its branch's commit"
