"""The registry of sources and benchmarks (:class:`SourceSpec`: where each lives on the Hub, its
domain and mapper), and mapping or loading many rows of one (:func:`map_rows`, :func:`load_source`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from nemotron_cascade.data.schemas import validate_row
from nemotron_cascade.data.sources.benchmarks import map_aime, map_gpqa, map_ifeval, map_livecodebench, map_math500
from nemotron_cascade.data.sources.code import map_apps, map_open_code_reasoning, map_taco
from nemotron_cascade.data.sources.fields import RowError
from nemotron_cascade.data.sources.general import (
    map_helpsteer3_preference,
    map_llama_nemotron_chat,
    map_llama_nemotron_safety,
)
from nemotron_cascade.data.sources.instruction_following import map_if_multi_constraints
from nemotron_cascade.data.sources.math import map_acemath_instruct, map_numina_math_cot, map_open_math_reasoning
from nemotron_cascade.data.sources.science import map_llama_nemotron_science, map_s1k
from nemotron_cascade.data.sources.swe import check_real_swe_task, map_swe_bench, map_swe_fixer, map_swe_smith
from nemotron_cascade.data.sources.tool_calling import map_xlam_function_calling

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSpec:
    """Where a source lives on the Hub and how its rows map.

    ``builder`` + ``data_files``: read with a packaged builder (``json``/``parquet``) from ``hf://``
    files instead of the repository's own config (needed for repositories with loading scripts).
    ``rl_ok``: whether rows may go to the ``rl`` split (not without tests). ``text_fields``:
    benchmark columns that decontamination compares against. ``check``: what a mapped task must
    hold beyond its ``task.<domain>`` schema (why it does not, or None), e.g. a real SWE row's
    repository and commit. ``rl_ok`` is also False for preference pairs (HelpSteer3): the reward
    model reads its pairs from the ``sft`` split.
    """

    name: str
    hf_path: str
    config: str | None
    split: str
    domain: str
    mapper: Callable[[Mapping], dict]
    id_column: str | None = None
    rl_ok: bool = True
    builder: str | None = None
    data_files: str | list[str] | None = None
    text_fields: tuple[str, ...] = ()
    check: Callable[[dict], str | None] | None = None


SOURCES: dict[str, SourceSpec] = {s.name: s for s in [
    SourceSpec("acemath_instruct", "nvidia/AceMath-Instruct-Training-Data", None, "math_sft", "math",
               map_acemath_instruct),
    SourceSpec("numina_math_cot", "AI-MO/NuminaMath-CoT", None, "train", "math", map_numina_math_cot),
    SourceSpec("open_math_reasoning", "nvidia/OpenMathReasoning", None, "cot", "math", map_open_math_reasoning),
    SourceSpec("taco", "BAAI/TACO", None, "train", "code", map_taco, id_column="url", builder="parquet",
               data_files="hf://datasets/BAAI/TACO/ALL/train-*.parquet"),
    SourceSpec("apps", "codeparrot/apps", None, "train", "code", map_apps, id_column="problem_id",
               builder="json", data_files="hf://datasets/codeparrot/apps/train.jsonl"),
    SourceSpec("open_code_reasoning", "nvidia/OpenCodeReasoning", "split_0", "split_0", "code",
               map_open_code_reasoning, id_column="id", rl_ok=False),
    SourceSpec("s1k", "simplescaling/s1K", None, "train", "science", map_s1k),
    SourceSpec("llama_nemotron_science", "nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "science",
               "science", map_llama_nemotron_science),
    SourceSpec("swe_bench_train", "princeton-nlp/SWE-bench", None, "train", "swe", map_swe_bench,
               id_column="instance_id", check=check_real_swe_task),
    SourceSpec("swe_smith", "SWE-bench/SWE-smith", None, "train", "swe", map_swe_smith, id_column="instance_id",
               check=check_real_swe_task),
    SourceSpec("swe_fixer", "internlm/SWE-Fixer-Train-110K", None, "train", "swe", map_swe_fixer,
               id_column="instance_id", check=check_real_swe_task),
    # the card's split "test" is the whole set (21k tasks); "filtered" the subset with Docker images
    SourceSpec("swe_rebench", "nebius/SWE-rebench", None, "test", "swe", map_swe_bench, id_column="instance_id",
               check=check_real_swe_task),
    SourceSpec("llama_nemotron_chat", "nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "chat", "general",
               map_llama_nemotron_chat),
    SourceSpec("llama_nemotron_safety", "nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "safety", "general",
               map_llama_nemotron_safety),
    SourceSpec("helpsteer3", "nvidia/HelpSteer3", "preference", "train", "general", map_helpsteer3_preference,
               rl_ok=False),
    SourceSpec("if_multi_constraints", "allenai/IF_multi_constraints_upto5", None, "train", "instruction_following",
               map_if_multi_constraints, id_column="key"),
    SourceSpec("xlam_function_calling", "Salesforce/xlam-function-calling-60k", None, "train", "tool_calling",
               map_xlam_function_calling, id_column="id"),
]}

_LCB_FILES = [f"hf://datasets/livecodebench/code_generation_lite/{f}.jsonl"
              for f in ("test", "test2", "test3", "test4", "test5", "test6")]

BENCHMARKS: dict[str, SourceSpec] = {s.name: s for s in [
    SourceSpec("aime24", "HuggingFaceH4/aime_2024", None, "train", "math", map_aime, id_column="id",
               text_fields=("problem",)),
    SourceSpec("aimo_validation_aime", "AI-MO/aimo-validation-aime", None, "train", "math", map_aime,
               id_column="id", text_fields=("problem",)),
    SourceSpec("math500", "HuggingFaceH4/MATH-500", None, "test", "math", map_math500, id_column="unique_id",
               text_fields=("problem",)),
    SourceSpec("gpqa_diamond", "Idavidrein/gpqa", "gpqa_diamond", "train", "science", map_gpqa,
               id_column="Record ID", text_fields=("Question",)),
    SourceSpec("livecodebench", "livecodebench/code_generation_lite", None, "train", "code", map_livecodebench,
               id_column="question_id", builder="json", data_files=_LCB_FILES, text_fields=("question_content",)),
    SourceSpec("ifeval", "google/IFEval", None, "train", "instruction_following", map_ifeval, id_column="key",
               text_fields=("prompt",)),
    SourceSpec("swe_bench_verified", "princeton-nlp/SWE-bench_Verified", None, "test", "swe", map_swe_bench,
               id_column="instance_id", text_fields=("problem_statement",), check=check_real_swe_task),
]}


def get_spec(name: str) -> SourceSpec:
    """The source or benchmark named ``name``."""
    spec = SOURCES.get(name) or BENCHMARKS.get(name)
    if spec is None:
        raise KeyError(f"unknown source {name!r}; sources: {sorted(SOURCES)}; benchmarks: {sorted(BENCHMARKS)}")
    return spec

def stable_hash(text: str) -> float:
    """A number in [0, 1) fixed by ``text``."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 2**32


def _raw_id(raw: Mapping, spec: SourceSpec) -> Any:
    value = raw.get(spec.id_column) if spec.id_column and isinstance(raw, Mapping) else None
    return value if isinstance(value, (str, int, float)) else None


def _reject(spec: SourceSpec, index: int, raw: Mapping, field: str | None, reason: str,
            kind: str = "invalid") -> dict:
    """A quarantine record: which source, row and field, and why (the reason repeats source and row)."""
    raw_id = _raw_id(raw, spec)
    where = f"{spec.name} row {index}" + (f" (id {raw_id!r})" if raw_id is not None else "")
    return {"source": spec.name, "row": index, "field": field, "reason": f"{where}: {reason}",
            "raw_id": raw_id, "kind": kind}


def map_rows(source: str, rows: Iterable[Mapping], *, start: int = 0, task_split: str | None = None,
             rl_share: float = 0.0) -> tuple[list[dict], list[dict]]:
    """Tasks and rejects of ``rows`` from ``source`` (a name of :data:`SOURCES` or :data:`BENCHMARKS`).

    ``row`` in a reject is the 0-based position in ``rows`` plus ``start``. ``task_split`` forces
    every task into one split; otherwise benchmarks give ``bench`` and training sources ``rl`` for a
    stable ``rl_share`` of task keys (never for sources without tests) and ``sft`` for the rest.
    """
    spec = get_spec(source)
    if not 0.0 <= rl_share <= 1.0:
        raise ValueError(f"rl_share must be in [0, 1], got {rl_share}")
    tasks, rejects, seen = [], [], {}
    for index, raw in enumerate(rows, start=start):
        if not isinstance(raw, Mapping):
            rejects.append(_reject(spec, index, {}, None, f"expected a row object, got {type(raw).__name__}"))
            continue
        try:
            fields = spec.mapper(raw)
        except RowError as error:
            rejects.append(_reject(spec, index, raw, error.field, str(error)))
            continue
        key = str(fields.pop("key", None) or fields["prompt"])
        task_id = f"{source}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
        if task_id in seen:
            rejects.append(_reject(spec, index, raw, None, f"duplicate of row {seen[task_id]} (task id {task_id})",
                                   kind="duplicate"))
            continue
        if task_split is not None:
            split = task_split
        elif spec.text_fields:
            split = "bench"
        else:
            split = "rl" if spec.rl_ok and stable_hash(f"{spec.domain}|{key}") < rl_share else "sft"
        task = {"id": task_id, "domain": spec.domain, "split": split, "source": source, **fields}
        problem = validate_row(f"task.{spec.domain}", task) or (spec.check(task) if spec.check else None)
        if problem:
            rejects.append(_reject(spec, index, raw, None, f"mapped row breaks task.{spec.domain}: {problem}"))
            continue
        seen[task_id] = index
        tasks.append(task)
    return tasks, rejects


def benchmark_texts(name: str, rows: Iterable[Mapping]) -> list[str]:
    """The decontamination texts of a benchmark's rows (its ``text_fields``, non-empty strings)."""
    spec = BENCHMARKS[name]
    return [raw[f] for raw in rows for f in spec.text_fields
            if isinstance(raw.get(f), str) and raw[f].strip()]


def _load_dataset():
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - exercised only without the gpu extra
        raise ImportError("loading HF sources needs the 'datasets' package: pip install -e '.[gpu]' "
                          "(or pip install datasets==5.2.0)") from exc
    return datasets.load_dataset


HUB_PREFIX = "hf://datasets/"


def _on_root(files: Any, hub_root: str) -> Any:
    """``hf://datasets/<repo>/<file>`` data files as the same files under ``hub_root``."""
    if isinstance(files, str):
        return f"{hub_root.rstrip('/')}/{files[len(HUB_PREFIX):]}" if files.startswith(HUB_PREFIX) else files
    if isinstance(files, Mapping):
        return {k: _on_root(v, hub_root) for k, v in files.items()}
    return [_on_root(f, hub_root) for f in files]


def iter_raw_rows(name: str, split: str | None = None, limit: int | None = None, *, builder: str | None = None,
                  data_files: Any = None, streaming: bool | None = None, hub_root: str | None = None,
                  **load_kwargs: Any) -> Iterable[Mapping]:
    """Raw rows of a source or benchmark as ``datasets.load_dataset`` yields them (at most ``limit``).

    ``builder`` / ``data_files`` override the registry (e.g. ``"json"`` and a local file); with a
    ``limit``, the split is streamed unless ``streaming=False``, so a 50 GB source is not downloaded
    to read its first rows. ``hub_root``: a local directory laid out as the Hub is (``<hub_root>/<org>/
    <name>/`` holding the repository's files, its README's ``configs`` included), read by the same
    ``load_dataset`` call with the directory in place of the hub id (an offline mirror, or the
    tests' copies).
    """
    spec = get_spec(name)
    load_dataset = _load_dataset()
    builder, data_files = builder or spec.builder, data_files if data_files is not None else spec.data_files
    path = spec.hf_path
    if hub_root:
        path = f"{hub_root.rstrip('/')}/{spec.hf_path}"
        data_files = _on_root(data_files, hub_root) if data_files is not None else None
    if streaming is None:
        streaming = limit is not None
    if builder is not None:
        if data_files is None:
            raise ValueError(f"source {name!r}: builder {builder!r} needs data_files")
        files = data_files if isinstance(data_files, Mapping) else {split or "train": data_files}
        dataset = load_dataset(builder, data_files=files, split=split or next(iter(files)),
                               streaming=streaming, **load_kwargs)
    else:
        dataset = load_dataset(path, spec.config, split=split or spec.split, streaming=streaming, **load_kwargs)
    return islice(dataset, limit) if limit is not None else dataset


def load_source(name: str, split: str | None = None, limit: int | None = None, *, task_split: str | None = None,
                rl_share: float = 0.0, **load_kwargs: Any) -> tuple[list[dict], list[dict]]:
    """``(tasks, rejects)`` of a source or benchmark loaded from the Hub (``split``: the HF split,
    default the registry's; ``limit``: raw rows read). See :func:`iter_raw_rows` and :func:`map_rows`."""
    rows = iter_raw_rows(name, split, limit, **load_kwargs)
    tasks, rejects = map_rows(name, rows, task_split=task_split, rl_share=rl_share)
    logger.info("source %s: %d tasks, %d rejects", name, len(tasks), len(rejects))
    return tasks, rejects


def load_benchmark_texts(name: str, split: str | None = None, limit: int | None = None,
                         **load_kwargs: Any) -> list[str]:
    """Decontamination texts of a benchmark loaded from the Hub."""
    return benchmark_texts(name, iter_raw_rows(name, split, limit, **load_kwargs))
