"""Every source and benchmark read from a local copy of its Hub repository (tests/hub_mirror.py: the
repository's own paths, format and README ``configs``) through ``HFSourceDataset(hub_root=...)`` /
``HFBenchmarkTextsDataset(hub_root=...)``, the same ``load_dataset`` call as for the hub id, gives
exactly what mapping the fixture rows gives. Offline, with the ``datasets`` cache in a temporary
directory (nothing read from or written to the user's cache)."""

from __future__ import annotations

import fnmatch
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")

from hub_mirror import LAYOUTS, build_mirror, fixture_rows, layout_of  # noqa: E402  # tests/
from kedro.io.core import DatasetError  # noqa: E402

from nemotron_cascade.data import sources as S  # noqa: E402
from nemotron_cascade.datasets.hf_source import HFBenchmarkTextsDataset, HFSourceDataset  # noqa: E402

NAMES = sorted({**S.SOURCES, **S.BENCHMARKS})


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """``(mirror root, cache dir)``: the mirror built once, the HF caches and offline mode pointed away
    from the user's (environment and the ``datasets`` / ``huggingface_hub`` constants read at import)."""
    import huggingface_hub.constants as hub_constants

    base = tmp_path_factory.mktemp("hub")
    cache = base / "datasets_cache"
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {"HF_HOME": base / "hf_home", "HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1",
                           "HF_DATASETS_OFFLINE": "1"}.items():
            mp.setenv(var, str(value))
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
        mp.setattr(datasets.config, "HF_MODULES_CACHE", base / "modules")
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        yield build_mirror(base / "mirror"), str(cache)


# --------------------------------------------------------------------------------------------
# Layouts: one per registry name, in the repository the registry names
@pytest.mark.parametrize("name", NAMES)
def test_every_source_and_benchmark_has_a_layout_in_its_own_repository(name):
    layout = layout_of(name)
    spec = S.get_spec(name)
    assert layout.repo == spec.hf_path, f"{name}: the layout copies {layout.repo}, the registry reads {spec.hf_path}"
    assert layout.card.startswith(f"https://huggingface.co/datasets/{layout.repo}"), "name the card it follows"
    if spec.builder is None:  # read by the repository's config: the registry's config/split must be declared
        config = spec.config or "default"
        declared = layout.configs.get(config) if layout.configs else None
        assert declared is None or spec.split in declared, f"{name}: split {spec.split!r} not in config {config!r}"
    else:  # read from hf:// files: each pattern names a file the layout writes
        files = [spec.data_files] if isinstance(spec.data_files, str) else spec.data_files
        for pattern in files:
            path = pattern.removeprefix(f"{S.registry.HUB_PREFIX}{layout.repo}/")
            assert any(fnmatch.fnmatch(f, path) for f in layout.files), f"{name}: no layout file matches {pattern}"


def test_no_layout_holds_a_name_the_registry_lacks():
    held = [n for lay in LAYOUTS for n in lay.files.values() if n]
    assert sorted(held) == NAMES, "each registry name in exactly one layout file, and no stale names"


@pytest.mark.parametrize("layout", LAYOUTS, ids=[lay.repo for lay in LAYOUTS])
def test_configs_resolve_as_on_the_hub(hub, layout):
    root, _ = hub
    path = str(root / layout.repo)
    names = datasets.get_dataset_config_names(path)
    assert names == (list(layout.configs) or ["default"])
    if len(names) > 1 and layout.default is None:  # e.g. GPQA: the Hub asks which config
        with pytest.raises(ValueError, match="Config name is missing"):
            datasets.load_dataset(path, split="train", streaming=True)
    if layout.default:
        assert datasets.get_dataset_default_config_name(path) == layout.default


PARQUET_TYPES = [  # (name, column, type, why)
    ("taco", "input_output", pa.string(), "TACO stores its tests as a JSON string"),
    ("taco", "Expected Auxiliary Space", pa.string(), "null in every fixture row, a string column on the card"),
    ("swe_bench_train", "FAIL_TO_PASS", pa.string(), "SWE-bench: a JSON list inside a string"),
    ("swe_smith", "FAIL_TO_PASS", pa.list_(pa.string()), "SWE-smith: a list of test ids"),
    ("acemath_instruct", "messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
     "chat turns: a list of structs"),
    ("s1k", "thinking_trajectories", pa.list_(pa.string()), "a list of strings"),
    ("s1k", "cot", pa.null(), "the card's dtype: null"),
    ("aime24", "id", pa.int64(), "an integer id"),
    ("aimo_validation_aime", "answer", pa.int64(), "an integer answer column"),
]


@pytest.mark.parametrize("name,column,dtype,why", PARQUET_TYPES, ids=[f"{n}-{c}" for n, c, _, _ in PARQUET_TYPES])
def test_parquet_keeps_the_cards_types(hub, name, column, dtype, why):
    import pyarrow.parquet as pq

    root, _ = hub
    layout = layout_of(name)
    path = next(p for p, n in layout.files.items() if n == name)
    assert pq.read_schema(root / layout.repo / path).field(column).type == dtype, why


# --------------------------------------------------------------------------------------------
# Loading: the same tasks and texts as mapping the fixture rows, streamed (limit) and not
LIMITS = [(None, "no limit: the split is prepared, not streamed"), (1, "limit 1: streamed, first row only"),
          (100, "limit over the row count: streamed, every row")]


@pytest.mark.parametrize("limit,why", LIMITS, ids=["full", "stream-1", "stream-all"])
@pytest.mark.parametrize("name", NAMES)
def test_hf_source_dataset_reads_the_mirror_as_the_fixture_rows(hub, name, limit, why):
    root, cache = hub
    rows = fixture_rows(name)[:limit]
    dataset = HFSourceDataset(sources=[name], limit=limit, hub_root=str(root), load_args={"cache_dir": cache})
    tasks = dataset.load()
    expected, rejects = S.map_rows(name, rows)
    assert [t["id"] for t in tasks] == [t["id"] for t in expected], why
    assert tasks == expected and dataset.last_rejects == rejects, why
    assert dataset._describe()["hub_root"] == str(root)


@pytest.mark.parametrize("limit,why", LIMITS, ids=["full", "stream-1", "stream-all"])
@pytest.mark.parametrize("name", sorted(S.BENCHMARKS))
def test_hf_benchmark_texts_dataset_reads_the_mirror(hub, name, limit, why):
    root, cache = hub
    dataset = HFBenchmarkTextsDataset(benchmarks=[{"name": name, "limit": limit}], hub_root=str(root),
                                      load_args={"cache_dir": cache})
    assert dataset.load() == S.benchmark_texts(name, fixture_rows(name)[:limit]), why


def test_an_entry_with_its_own_data_files_reads_them_not_the_mirror(hub, tmp_path):
    root, cache = hub
    local = {"name": "math500", "builder": "json",
             "data_files": str(root / "HuggingFaceH4/MATH-500/test.jsonl")}
    dataset = HFSourceDataset(sources=[local], hub_root=str(tmp_path / "empty"), load_args={"cache_dir": cache})
    assert dataset.load() == S.map_rows("math500", fixture_rows("math500"))[0]


# --------------------------------------------------------------------------------------------
# A source missing from the mirror: an error naming where it was looked for
MISSING = [  # (what is removed, dataset, words)
    ("the repository directory", "taco", "no local copy of its repository at"),
    ("the benchmark's repository", "gpqa_diamond", "no local copy of its repository at"),
]


@pytest.mark.parametrize("what,name,words", MISSING, ids=[m[1] for m in MISSING])
def test_a_source_missing_from_the_mirror_fails_naming_the_path(hub, tmp_path, what, name, words):
    _, cache = hub
    root = build_mirror(tmp_path / "partial", names=["math500"])
    repo = root / S.get_spec(name).hf_path
    assert not repo.exists(), what
    dataset_cls = HFBenchmarkTextsDataset if name in S.BENCHMARKS else HFSourceDataset
    key = "benchmarks" if name in S.BENCHMARKS else "sources"
    with pytest.raises(DatasetError, match=words) as err:
        dataset_cls(**{key: [name]}, hub_root=str(root), load_args={"cache_dir": cache}).load()
    assert str(repo) in str(err.value) and repr(name) in str(err.value)


DATA_FILES_GONE = [  # (source, file removed from its copied repository, words naming it)
    ("taco", "BAAI/TACO/ALL", "no file matches {root}/BAAI/TACO/ALL/train-*.parquet"),  # hf:// pattern: checked
    ("livecodebench", "livecodebench/code_generation_lite/test3.jsonl",
     "no file matches {root}/livecodebench/code_generation_lite/test3.jsonl"),
    ("acemath_instruct", "nvidia/AceMath-Instruct-Training-Data/data/math_sft.parquet",  # a README config split:
     "Unable to find '{root}/nvidia/AceMath-Instruct-Training-Data/data/math_sft.parquet'"),  # datasets names it
]


@pytest.mark.parametrize("name,gone,words", DATA_FILES_GONE, ids=[d[0] for d in DATA_FILES_GONE])
def test_a_data_file_missing_from_a_copied_repository_is_named(hub, tmp_path, name, gone, words):
    _, cache = hub
    root = build_mirror(tmp_path / "partial", names=[name])
    target = root / gone  # the repository is there, (one of) its data files is not
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    dataset_cls = HFBenchmarkTextsDataset if name in S.BENCHMARKS else HFSourceDataset
    key = "benchmarks" if name in S.BENCHMARKS else "sources"
    with pytest.raises(DatasetError) as err:
        dataset_cls(**{key: [name]}, hub_root=str(root), load_args={"cache_dir": cache}).load()
    assert words.format(root=root) in str(err.value)


def test_without_hub_root_the_hub_id_is_read(monkeypatch):
    calls = []

    def fake_load_dataset(path, *args, **kwargs):
        calls.append(path)
        return iter(fixture_rows("math500"))

    monkeypatch.setattr(S.registry, "_load_dataset", lambda: fake_load_dataset)
    assert HFSourceDataset(sources=["math500"]).load() == S.map_rows("math500", fixture_rows("math500"))[0]
    assert calls == ["HuggingFaceH4/MATH-500"]
