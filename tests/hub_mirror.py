"""A local copy of the Hub repository of every source and benchmark, read by ``datasets`` as the hub id is.

``build_mirror(root)`` writes, under ``<root>/<org>/<name>/``, each repository of
``nemotron_cascade.data.sources`` (``SOURCES`` and ``BENCHMARKS``) in the layout the Hub serves: the
data files at the repository's own paths and in its own format (parquet, JSON lines, a JSON array or
CSV), and a ``README.md`` whose YAML header declares the card's ``configs:`` where the real card declares
them. ``load_dataset(<root>/<org>/<name>, config, split=...)`` then resolves config, split and files as
``load_dataset("<org>/<name>", ...)`` does on the Hub, and ``iter_raw_rows(..., hub_root=root)`` reads
it with the same call (``hf://datasets/...`` data files rewritten under ``root``).

Rows come from ``tests/data/fixtures/sources/<name>.jsonl`` (the card's columns, a few rows each). A
file of a declared split that no registry name reads holds zero rows with the same columns, so every
config resolves as on the Hub. Parquet keeps the card's types: lists stay lists, lists of objects are
structs, JSON-in-a-string columns (TACO's ``input_output``, SWE-bench's ``FAIL_TO_PASS``) stay strings;
a column that is null in every fixture row is written as a string unless the card types it otherwise.

Layouts: the repository (registry names it holds), the files written (rows; [empty]), the format,
and the card (README ``configs:``) or file listing of https://huggingface.co/datasets/<repository> that
each follows, as read with the ``search`` tool (docs/pages corpora). A config of the card that no
registry name reads is not copied (named below); every split of a copied config is.

  nvidia/AceMath-Instruct-Training-Data  data/math_sft.parquet                        parquet
    (acemath_instruct)                   [data/general_sft_stage1.parquet, ..stage2]  card configs: default, splits
                                                                                      general_sft_stage1/2, math_sft
                                                                                      -> data/<split>.parquet
  AI-MO/NuminaMath-CoT                   data/train-00000-of-00001.parquet            parquet
    (numina_math_cot)                    [data/test-00000-of-00001.parquet]           tree data/train-0000k-of-00005,
                                                                                      test-00000-of-00001; default
                                                                                      train/test -> data/<split>-*
  nvidia/OpenMathReasoning               data/cot-00000-of-00001.parquet              parquet
    (open_math_reasoning)                [tir, genselect, additional_problems]        card configs: default, splits
                                                                                      cot/tir/genselect/additional_
                                                                                      problems -> data/<split>-*
  BAAI/TACO (taco)                       ALL/train-00000-of-00001.parquet             parquet; ALL/train-*.parquet
                                                                                      beside a loading script (read
                                                                                      with the parquet builder)
  codeparrot/apps (apps)                 train.jsonl                                  jsonl; tree train.jsonl,
                                                                                      test.jsonl, apps.py (json
                                                                                      builder)
  nvidia/OpenCodeReasoning               split_0/train-00000-of-00001.parquet         parquet; card configs split_0
    (open_code_reasoning)                                                             -> split_0/train-* (split_1
                                                                                      not copied)
  simplescaling/s1K (s1k)                data/train-00000-of-00001.parquet            parquet; tree data/, default
                                                                                      train; ``cot`` dtype null
  nvidia/Llama-Nemotron-Post-Training-   SFT/science/science.jsonl,                   jsonl; card configs: SFT
    Dataset (llama_nemotron_science,     SFT/chat/chat.jsonl,                         (default; code, math, science,
    llama_nemotron_chat,                 SFT/safety/safety.jsonl                      chat, safety -> SFT/<split>/
    llama_nemotron_safety)               [SFT/code/code.jsonl, SFT/math/math.jsonl]   *.jsonl); RL not copied
  princeton-nlp/SWE-bench                data/train-00000-of-00001.parquet            parquet; tree data/{dev,test,
    (swe_bench_train)                    [data/dev-*, data/test-*]                    train}-00000-of-00001; default
  SWE-bench/SWE-smith (swe_smith)        data/train-00000-of-00001.parquet            parquet; default train; FAIL_TO_
                                                                                      PASS/PASS_TO_PASS string lists
  internlm/SWE-Fixer-Train-110K          swe-fixer-train-110k.jsonl                   jsonl; tree (no configs: the
    (swe_fixer)                                                                       file name gives split train)
  nebius/SWE-rebench (swe_rebench)       data/test-00000-of-00001.parquet             parquet; splits test, filtered
                                         [data/filtered-00000-of-00001.parquet]       (registry); no card in the
                                                                                      corpora: push_to_hub layout
  nvidia/HelpSteer3 (helpsteer3)         preference/train.jsonl.gz                    gzipped jsonl; tree preference/
                                         [preference/validation.jsonl.gz]             {train,validation}.jsonl.gz;
                                                                                      config preference (feedback,
                                                                                      edit, edit_quality not copied)
  allenai/IF_multi_constraints_upto5     data/train-00000-of-00001.parquet            parquet; default train (the
    (if_multi_constraints)                                                            allenai IF cards' layout)
  Salesforce/xlam-function-calling-60k   xlam_function_calling_60k.json               JSON array; card: "The dataset
    (xlam_function_calling)                                                           is at xlam_function_calling_
                                                                                      60k.json" (no configs)
  HuggingFaceH4/aime_2024 (aime24)       data/train-00000-of-00001.parquet            parquet; default train
  AI-MO/aimo-validation-aime             data/train-00000-of-00001.parquet            parquet; default train
    (aimo_validation_aime)
  HuggingFaceH4/MATH-500 (math500)       test.jsonl                                   jsonl; tree (no configs: the
                                                                                      file name gives split test)
  Idavidrein/gpqa (gpqa_diamond)         gpqa_diamond.csv                             CSV; card configs gpqa_<x> ->
                                                                                      gpqa_<x>.csv, split train
                                                                                      (main, extended, experts not
                                                                                      copied)
  livecodebench/code_generation_lite     test.jsonl [test2.jsonl .. test6.jsonl]      jsonl; tree test.jsonl ..
    (livecodebench)                                                                   test6.jsonl (json builder)
  google/IFEval (ifeval)                 ifeval_input_data.jsonl                      jsonl; tree (no configs)
  princeton-nlp/SWE-bench_Verified       data/test-00000-of-00001.parquet             parquet; default test
    (swe_bench_verified)

An empty file of a declared split keeps the columns of its repository's rows (parquet: no row group,
as ``datasets`` reads a 0-row group as a batch size of 0; JSON lines: the card then carries
``dataset_info`` features, as ``datasets`` infers a JSON config's columns from its first split's first
file). Streaming such a split gives no rows; ``load_dataset`` without streaming refuses it ("corresponds
to no data"), so only splits with rows are read.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

FIXTURES = Path(__file__).parent / "data" / "fixtures" / "sources"
FORMATS = ("parquet", "jsonl", "json", "csv")


@dataclass(frozen=True)
class RepoLayout:
    """One Hub repository: its data files (path -> the registry name whose fixture rows it holds, or
    None for a file of a declared split no registry name reads), their format, the card's ``configs``
    (``{config_name: {split: path pattern}}``; empty where the card declares none), parquet column
    types the rows alone do not give, the card or listing the layout follows, and the config the card
    marks ``default: true`` (None: one config named ``default``, or none marked)."""

    repo: str
    fmt: str
    files: Mapping[str, str | None]
    configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    types: Mapping[str, pa.DataType] = field(default_factory=dict)
    card: str = ""
    default: str | None = None


def _default(splits: Iterable[str], pattern: str = "data/{}-*") -> dict[str, dict[str, str]]:
    """The ``default`` config ``push_to_hub`` writes: one ``data/<split>-*`` pattern per split."""
    return {"default": {s: pattern.format(s) for s in splits}}


_ONE = "00000-of-00001"
_NEMOTRON_SFT = ("code", "math", "science", "chat", "safety")

LAYOUTS: tuple[RepoLayout, ...] = (
    RepoLayout("nvidia/AceMath-Instruct-Training-Data", "parquet",
               {"data/general_sft_stage1.parquet": None, "data/general_sft_stage2.parquet": None,
                "data/math_sft.parquet": "acemath_instruct"},
               _default(("general_sft_stage1", "general_sft_stage2", "math_sft"), "data/{}.parquet"),
               card="https://huggingface.co/datasets/nvidia/AceMath-Instruct-Training-Data README configs"),
    RepoLayout("AI-MO/NuminaMath-CoT", "parquet",
               {f"data/train-{_ONE}.parquet": "numina_math_cot", f"data/test-{_ONE}.parquet": None},
               _default(("train", "test")), card="https://huggingface.co/datasets/AI-MO/NuminaMath-CoT tree data/"),
    RepoLayout("nvidia/OpenMathReasoning", "parquet",
               {f"data/cot-{_ONE}.parquet": "open_math_reasoning", f"data/tir-{_ONE}.parquet": None,
                f"data/genselect-{_ONE}.parquet": None, f"data/additional_problems-{_ONE}.parquet": None},
               _default(("cot", "tir", "genselect", "additional_problems")),
               card="https://huggingface.co/datasets/nvidia/OpenMathReasoning README configs"),
    RepoLayout("BAAI/TACO", "parquet", {f"ALL/train-{_ONE}.parquet": "taco"},
               card="https://huggingface.co/datasets/BAAI/TACO ALL/train-*.parquet (loading script, no configs)"),
    RepoLayout("codeparrot/apps", "jsonl", {"train.jsonl": "apps"},
               card="https://huggingface.co/datasets/codeparrot/apps tree: train.jsonl, test.jsonl, apps.py"),
    RepoLayout("nvidia/OpenCodeReasoning", "parquet",
               {f"split_0/train-{_ONE}.parquet": "open_code_reasoning"}, {"split_0": {"split_0": "split_0/train-*"}},
               card="https://huggingface.co/datasets/nvidia/OpenCodeReasoning README configs"),
    RepoLayout("simplescaling/s1K", "parquet", {f"data/train-{_ONE}.parquet": "s1k"}, _default(("train",)),
               types={"cot": pa.null()}, card="https://huggingface.co/datasets/simplescaling/s1K tree data/"),
    RepoLayout("nvidia/Llama-Nemotron-Post-Training-Dataset", "jsonl",
               {"SFT/code/code.jsonl": None, "SFT/math/math.jsonl": None,
                "SFT/science/science.jsonl": "llama_nemotron_science", "SFT/chat/chat.jsonl": "llama_nemotron_chat",
                "SFT/safety/safety.jsonl": "llama_nemotron_safety"},
               {"SFT": {s: f"SFT/{s}/*.jsonl" for s in _NEMOTRON_SFT}},
               card="https://huggingface.co/datasets/nvidia/Llama-Nemotron-Post-Training-Dataset README configs",
               default="SFT"),
    RepoLayout("princeton-nlp/SWE-bench", "parquet",
               {f"data/train-{_ONE}.parquet": "swe_bench_train", f"data/dev-{_ONE}.parquet": None,
                f"data/test-{_ONE}.parquet": None},
               _default(("train", "dev", "test")), card="https://huggingface.co/datasets/princeton-nlp/SWE-bench tree"),
    RepoLayout("SWE-bench/SWE-smith", "parquet", {f"data/train-{_ONE}.parquet": "swe_smith"}, _default(("train",)),
               card="https://huggingface.co/datasets/SWE-bench/SWE-smith README"),
    RepoLayout("internlm/SWE-Fixer-Train-110K", "jsonl", {"swe-fixer-train-110k.jsonl": "swe_fixer"},
               card="https://huggingface.co/datasets/internlm/SWE-Fixer-Train-110K tree"),
    RepoLayout("nebius/SWE-rebench", "parquet",
               {f"data/test-{_ONE}.parquet": "swe_rebench", f"data/filtered-{_ONE}.parquet": None},
               _default(("test", "filtered")),
               card="https://huggingface.co/datasets/nebius/SWE-rebench (splits test, filtered; push_to_hub layout)"),
    RepoLayout("nvidia/HelpSteer3", "jsonl",
               {"preference/train.jsonl.gz": "helpsteer3", "preference/validation.jsonl.gz": None},
               {"preference": {"train": "preference/train.jsonl.gz", "validation": "preference/validation.jsonl.gz"}},
               card="https://huggingface.co/datasets/nvidia/HelpSteer3 tree preference/{train,validation}.jsonl.gz"),
    RepoLayout("allenai/IF_multi_constraints_upto5", "parquet", {f"data/train-{_ONE}.parquet": "if_multi_constraints"},
               _default(("train",)), card="https://huggingface.co/datasets/allenai/IF_multi_constraints_upto5"),
    RepoLayout("Salesforce/xlam-function-calling-60k", "json",
               {"xlam_function_calling_60k.json": "xlam_function_calling"},
               card="https://huggingface.co/datasets/Salesforce/xlam-function-calling-60k README"),
    RepoLayout("HuggingFaceH4/aime_2024", "parquet", {f"data/train-{_ONE}.parquet": "aime24"}, _default(("train",)),
               card="https://huggingface.co/datasets/HuggingFaceH4/aime_2024"),
    RepoLayout("AI-MO/aimo-validation-aime", "parquet", {f"data/train-{_ONE}.parquet": "aimo_validation_aime"},
               _default(("train",)), card="https://huggingface.co/datasets/AI-MO/aimo-validation-aime"),
    RepoLayout("HuggingFaceH4/MATH-500", "jsonl", {"test.jsonl": "math500"},
               card="https://huggingface.co/datasets/HuggingFaceH4/MATH-500 tree: test.jsonl"),
    RepoLayout("Idavidrein/gpqa", "csv", {"gpqa_diamond.csv": "gpqa_diamond"},
               {"gpqa_diamond": {"train": "gpqa_diamond.csv"}},
               card="https://huggingface.co/datasets/Idavidrein/gpqa README configs"),
    RepoLayout("livecodebench/code_generation_lite", "jsonl",
               {"test.jsonl": "livecodebench", **{f"test{k}.jsonl": None for k in range(2, 7)}},
               card="https://huggingface.co/datasets/livecodebench/code_generation_lite tree: test.jsonl..test6.jsonl"),
    RepoLayout("google/IFEval", "jsonl", {"ifeval_input_data.jsonl": "ifeval"},
               card="https://huggingface.co/datasets/google/IFEval tree: ifeval_input_data.jsonl"),
    RepoLayout("princeton-nlp/SWE-bench_Verified", "parquet", {f"data/test-{_ONE}.parquet": "swe_bench_verified"},
               _default(("test",)), card="https://huggingface.co/datasets/princeton-nlp/SWE-bench_Verified tree data/"),
)


def layout_of(name: str) -> RepoLayout:
    """The layout whose files hold the fixture rows of registry name ``name``."""
    found = [lay for lay in LAYOUTS if name in lay.files.values()]
    if len(found) != 1:
        raise KeyError(f"{len(found)} layouts hold {name!r} (tests/hub_mirror.py LAYOUTS): give it exactly one")
    return found[0]


def fixture_rows(name: str) -> list[dict]:
    """The fixture rows of ``name`` (tests/data/fixtures/sources/<name>.jsonl)."""
    with open(FIXTURES / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _table(rows: list[dict], types: Mapping[str, pa.DataType], schema: pa.Schema | None) -> pa.Table:
    """``rows`` as an Arrow table: the ``schema`` given (an empty sibling file), else the rows' own,
    with ``types`` applied and columns null in every row typed string."""
    if schema is not None:
        return schema.empty_table() if not rows else pa.Table.from_pylist(rows, schema=schema)
    table = pa.Table.from_pylist(rows)
    fields = [pa.field(f.name, types.get(f.name, pa.string() if pa.types.is_null(f.type) else f.type))
              for f in table.schema]
    return table.cast(pa.schema(fields))


def _write(path: Path, fmt: str, rows: list[dict], table: pa.Table | None, columns: list[str]) -> None:
    """``rows`` written to ``path`` in ``fmt`` (``table``: the same rows for parquet; ``columns``: the
    CSV header, kept when there are no rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":  # no rows: no row group (datasets reads a 0-row group as batch size 0)
        with pq.ParquetWriter(path, table.schema) as writer:
            if table.num_rows:
                writer.write_table(table)
    elif fmt == "jsonl":  # gzip-compressed where the repository's file is (``.jsonl.gz``)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        path.write_bytes(gzip.compress(text, mtime=0) if path.suffix == ".gz" else text)
    elif fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def _features(layout: RepoLayout, repo_dir: Path) -> dict[str, list] | None:
    """Per config, the ``dataset_info`` features of a JSON-lines repository that has empty files:
    ``datasets`` infers a JSON config's columns from its first split's first file, which may be one of
    those (on the Hub it holds rows). Read with pyarrow's JSON reader, as ``datasets`` reads the rows
    (the config's own rows, else the repository's first); None where not needed."""
    if layout.fmt != "jsonl" or all(layout.files.values()):
        return None
    import datasets
    import pyarrow.json as paj

    filled = [p for p, n in layout.files.items() if n]
    features = {}
    for config, splits in layout.configs.items():
        own = [p for p in filled if any(fnmatch.fnmatch(p, pattern) for pattern in splits.values())]
        schema = paj.read_json(repo_dir / (own or filled)[0]).schema
        features[config] = datasets.Features.from_arrow_schema(schema)._to_yaml_list()
    return features


def _card(layout: RepoLayout, names: list[str], features: dict[str, list] | None) -> str:
    """The repository's README.md: the card's ``configs:`` in its YAML header (and ``features`` per
    config where given), and where the rows come from."""
    header: dict[str, Any] = {}
    if features is not None:
        header["dataset_info"] = [{"config_name": c, "features": f} for c, f in features.items()]
    if layout.configs:
        header["configs"] = [{"config_name": c, "data_files": [{"split": s, "path": p} for s, p in splits.items()],
                              **({"default": True} if c == layout.default else {})}
                             for c, splits in layout.configs.items()]
    front = f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n" if header else ""
    sources = ", ".join(f"tests/data/fixtures/sources/{n}.jsonl" for n in names)
    return f"{front}# {layout.repo} (local copy)\n\nLayout after {layout.card}; rows from {sources}.\n"


def write_repo(root: Path, layout: RepoLayout, rows: Mapping[str, list[dict]] | None = None) -> Path:
    """Write ``layout``'s repository under ``root/<org>/<name>`` and return that directory (``rows``:
    rows to write instead of a name's fixture, in the same columns)."""
    if layout.fmt not in FORMATS:
        raise ValueError(f"{layout.repo}: format {layout.fmt!r} not one of {FORMATS}")
    repo_dir = root / layout.repo
    names = [n for n in layout.files.values() if n]
    rows_of = {n: list((rows or {}).get(n) or fixture_rows(n)) for n in names}
    schema = None
    if layout.fmt == "parquet":
        schema = _table(rows_of[names[0]], layout.types, None).schema
    columns = list(dict.fromkeys(k for r in rows_of[names[0]] for k in r))
    for path, name in layout.files.items():
        rows = rows_of[name] if name else []
        table = _table(rows, layout.types, schema) if layout.fmt == "parquet" else None
        _write(repo_dir / path, layout.fmt, rows, table, columns)
    card = _card(layout, names, _features(layout, repo_dir))
    (repo_dir / "README.md").write_text(card, encoding="utf-8")
    return repo_dir


def build_mirror(root: str | Path, names: Iterable[str] | None = None,
                 rows: Mapping[str, list[dict]] | None = None) -> Path:
    """Write the local Hub copy of every source and benchmark (or of the repositories holding ``names``)
    under ``root`` and return ``root``: pass it as ``hub_root`` to ``iter_raw_rows``,
    ``HFSourceDataset`` or ``HFBenchmarkTextsDataset``. ``rows``: per name, rows written instead of
    its fixture's (the same columns; e.g. SWE rows whose commits exist in a test-made git mirror)."""
    from nemotron_cascade.data.sources import BENCHMARKS, SOURCES

    root = Path(root)
    wanted = list(names) if names is not None else [*SOURCES, *BENCHMARKS]
    layouts = {lay.repo: lay for lay in map(layout_of, wanted)}
    for layout in layouts.values():
        write_repo(root, layout, rows)
    return root
