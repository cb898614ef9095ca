"""Teacher backends for data curation: who writes the SFT responses.

A teacher answers a batch of requests::

    teacher.respond(rows, thinking, k) -> [[response] * k for each row]

row ``i`` in thinking mode when ``thinking[i]``; ``teacher(row, thinking)`` answers one row (the
older single-row contract). Build one with ``make_teacher(backend, **options)``, or from the
``params:teacher.backends`` blocks with :func:`teacher_from_config`:

- ``oracle``: the embedded world's programmatic teacher (:mod:`.oracle`; it refuses real rows);
- ``dataset``: the responses the sources carry (``reference_responses``), a model teacher for the
  rest (:mod:`.dataset_teacher`);
- ``transformers``: any local model directory through :class:`~.hf.HFGenerator`;
- ``openai``: an OpenAI-compatible server through the ``openai`` SDK (``vllm serve``, or
  :mod:`.serve` for a small local model; :mod:`.openai_teacher`);
- ``vllm``: an offline ``vllm.LLM`` engine (needs ``pip install .[gpu]``).

The model teachers see a task exactly as the student will: the prompt is
``world.render_prompt(row, thinking)``, our chat template with its generation prompt. Every
teacher has ``identity`` (the options that decide its answers: the resume cache of
:mod:`nemotron_cascade.data.teacher` is keyed by them, so changing ``concurrency`` keeps the cache
and changing ``temperature`` does not) and ``cacheable`` (False for teachers whose answers are
instant and defined by code, where a cache could only go stale). Two hooks let a teacher answer
from the data itself (the ``dataset`` teacher; every other teacher keeps the defaults):
:meth:`BatchTeacher.plan` may move a drawn request to the mode the row's source answers in, and
:meth:`BatchTeacher.from_data` gives the answers taken from the row, which are never asked nor cached.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nemotron_cascade.data import world
from nemotron_cascade.generation.base import SamplingParams

log = logging.getLogger(__name__)


class BatchTeacher:
    """Base of the teachers: :meth:`respond` answers a batch, ``teacher(row, thinking)`` one row."""

    cacheable = True
    identity: dict = {}

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        raise NotImplementedError

    def plan(self, requests: list[tuple[dict, bool]]) -> list[tuple[dict, bool]]:
        """The (row, thinking) requests to ask given the drawn ones: unchanged (the ``dataset``
        teacher moves a request to the mode the row's source answers in)."""
        return requests

    def from_data(self, row: dict, thinking: bool) -> list[str] | None:
        """The answers to a request taken from the row itself, never asked nor cached (``[]``: the
        request gets none); ``None``: ask :meth:`respond`. ``None`` for every model teacher."""
        return None

    def __call__(self, row: dict, thinking: bool) -> str:
        return self.respond([row], [thinking], 1)[0][0]


class FunctionTeacher(BatchTeacher):
    """A function ``fn(row, thinking) -> str`` as a batched teacher; its k answers are k calls."""

    cacheable = False

    def __init__(self, fn: Callable[[dict, bool], str]):
        self.fn = fn

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        _check_request(rows, thinking, k)
        return [[self.fn(row, mode) for _ in range(k)] for row, mode in zip(rows, thinking)]


def as_teacher(teacher) -> BatchTeacher:
    """``teacher`` itself when it answers batches, else a single-row function wrapped as one."""
    return teacher if hasattr(teacher, "respond") else FunctionTeacher(teacher)


def _check_request(rows: list[dict], thinking: list[bool], k: int) -> None:
    if len(rows) != len(thinking):
        raise ValueError(f"teacher: {len(rows)} rows but {len(thinking)} thinking flags")
    if k < 1:
        raise ValueError(f"teacher: k must be >= 1, got {k}")


def _prompts(rows: list[dict], thinking: list[bool], k: int) -> list[str]:
    _check_request(rows, thinking, k)
    return [world.render_prompt(row, mode) for row, mode in zip(rows, thinking)]


def _warn_truncated(backend: str, truncated: int, total: int, limit_name: str, limit: int) -> None:
    if truncated:
        log.warning("%s teacher: %d of %d responses hit %s=%d (cut short)", backend, truncated, total,
                    limit_name, limit)


def _dir_stamp(path: str) -> list:
    """Names, sizes and mtimes of a model directory's files: a retrained model gets a new cache."""
    p = Path(path)
    return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file()) \
        if p.is_dir() else []


class TeacherServerError(RuntimeError):
    """The server refused a request (a 4xx other than 408, 409, 429) or stayed unreachable or
    malformed after the retries."""


class GeneratorTeacher(BatchTeacher):
    """A teacher over any :class:`~nemotron_cascade.generation.base.Generator`: the rendered prompts
    of the requests, ``params`` with ``n = k``. Greedy when ``temperature`` is 0 (then k > 1
    answers are identical copies)."""

    def __init__(self, backend: str, generator, params: SamplingParams, identity: dict):
        self.backend, self.generator, self.params, self.identity = backend, generator, params, identity

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        out = self.generator.generate(_prompts(rows, thinking, k), replace(self.params, n=k))
        _warn_truncated(self.backend, sum(not c.finished for o in out for c in o), len(rows) * k,
                        "max_new_tokens", self.params.max_new_tokens)
        return [[c.text for c in o] for o in out]


def transformers_teacher(model_path: str, max_new_tokens: int = 512, temperature: float = 0.0,
                        top_p: float = 1.0, batch_size: int = 16, seed: int = 0, dtype: str = "float32",
                        engine: str = "auto"):
    """A local model directory (``save_pretrained``) generating on this machine: ``engine`` ``hf``
    (HF ``generate``, any causal LM), ``embedded`` (the plain-torch decoder of a tiny
    tied-embedding Qwen3, :mod:`~nemotron_cascade.generation.embedded`) or ``auto`` (embedded
    where it decodes the model, else hf)."""
    from nemotron_cascade import models
    from nemotron_cascade.generation import embedded
    from nemotron_cascade.generation.engines import make_generator

    if engine not in ("auto", "hf", "embedded"):
        raise ValueError(f"teacher transformers: engine must be 'auto', 'hf' or 'embedded', got {engine!r}")
    model = models.load_model(model_path, dtype)
    if engine == "auto":
        try:
            embedded.read_weights(model)
            engine = "embedded"
        except ValueError:
            engine = "hf"
    generator = make_generator(engine, model, models.load_tokenizer(model_path), batch_size)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    return GeneratorTeacher("transformers", generator, params, {
        "model_path": str(model_path), "model_files": _dir_stamp(model_path), "dtype": dtype, "engine": engine,
        "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed})


def vllm_teacher(model_path: str, max_tokens: int = 1024, temperature: float = 0.6, top_p: float = 0.95,
                seed: int = 0, dtype: str = "bfloat16", tensor_parallel_size: int = 1,
                gpu_memory_utilization: float = 0.9, max_model_len: int | None = None):
    """An offline ``vllm.LLM`` engine on this machine's GPUs (``pip install .[gpu]``): the rollout
    engine :class:`~nemotron_cascade.generation.vllm_engine.VLLMGenerator` (token-id prompts of our
    rendered text, ``n = k`` samples per request) as a teacher."""
    from nemotron_cascade.generation.vllm_engine import VLLMGenerator

    generator = VLLMGenerator.from_pretrained(model_path, dtype=dtype, seed=seed,
                                              tensor_parallel_size=tensor_parallel_size,
                                              gpu_memory_utilization=gpu_memory_utilization,
                                              max_model_len=max_model_len)
    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    return GeneratorTeacher("vllm", generator, params, {
        "model_path": str(model_path), "model_files": _dir_stamp(model_path), "dtype": dtype, "seed": seed,
        "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p})


def _builders() -> dict[str, Callable[..., BatchTeacher]]:
    from nemotron_cascade.generation.dataset_teacher import dataset_teacher  # these import this module
    from nemotron_cascade.generation.openai_teacher import OpenAITeacher
    from nemotron_cascade.generation.oracle import oracle_teacher

    return {"oracle": oracle_teacher, "dataset": dataset_teacher, "transformers": transformers_teacher,
            "openai": OpenAITeacher, "vllm": vllm_teacher}


def make_teacher(backend: str, **options) -> BatchTeacher:
    """The teacher named ``backend``, built with its ``options`` (checked by name before building)."""
    builders = _builders()
    if backend not in builders:
        raise KeyError(f"unknown teacher backend {backend!r}; available: {sorted(builders)}")
    try:
        inspect.signature(builders[backend]).bind(**options)
    except TypeError as e:
        raise TypeError(f"teacher {backend!r}: bad options {sorted(options)}: {e}") from None
    return builders[backend](**options)


def teacher_from_config(backend: str, backends: dict | None = None) -> BatchTeacher:
    """The teacher ``backend`` built from its block ``backends[backend]`` (``params:teacher.backends``).

    A block may name its kind with ``backend:``: another instance of a kind under its own name, e.g.
    ``openai_plain: {backend: openai, model: ...}`` beside ``openai``. The ``dataset`` teacher's
    ``fallback`` (a block's name, or one per mode: ``{thinking: openai, plain: openai_plain}``) is
    built from its block(s) the same way, once per name.
    """
    blocks = dict(backends or {})
    options = dict(blocks.get(backend) or {})
    kind = options.pop("backend", backend)
    if kind == "dataset" and options.get("fallback") is not None:
        options["fallback"] = _fallbacks(options["fallback"], blocks, backend)
    return make_teacher(kind, **options)


def _fallbacks(fallback, blocks: dict, owner: str):
    """The ``dataset`` teacher's fallback teacher(s) built from their blocks (one teacher per name)."""
    names = dict(fallback) if isinstance(fallback, dict) else {"thinking": fallback, "plain": fallback}
    if not set(names) <= {"thinking", "plain"}:
        raise ValueError(f"teacher.backends.{owner}.fallback: a block name or {{thinking: name, plain: name}}, "
                         f"got keys {sorted(names)}")
    built: dict[str, BatchTeacher] = {}
    for name in {n for n in names.values() if n is not None}:
        kind = dict(blocks.get(name) or {}).get("backend", name)
        if kind == "dataset" or (name not in blocks and kind not in _builders()):
            raise ValueError(f"teacher.backends.{owner}.fallback names {name!r}: it must be a model teacher's "
                             f"block of teacher.backends (e.g. openai), got {sorted(blocks)}")
        built[name] = teacher_from_config(name, blocks)
    return {mode: None if name is None else built[name] for mode, name in names.items()}
