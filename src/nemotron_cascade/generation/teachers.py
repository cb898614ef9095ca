"""Teacher backends for data curation: who writes the SFT responses.

A teacher answers a batch of requests::

    teacher.respond(rows, thinking, k) -> [[response] * k for each row]

row ``i`` in thinking mode when ``thinking[i]``; ``teacher(row, thinking)`` answers one row (the
older single-row contract). Build one with ``make_teacher(backend, **options)``:

- ``oracle``: the embedded world's programmatic teacher (:mod:`.oracle`);
- ``transformers``: any local model directory through :class:`~.hf.HFGenerator`;
- ``openai``: an OpenAI-compatible server (``vllm serve``, or :mod:`.serve` for a small local model);
- ``vllm``: an offline ``vllm.LLM`` engine (needs ``pip install .[gpu]``).

The model teachers see a task exactly as the student will: the prompt is
``world.render_prompt(row, thinking)``, our chat template with its generation prompt. Every
teacher has ``identity`` (the options that decide its answers: the resume cache of
:mod:`nemotron_cascade.data.teacher` is keyed by them, so changing ``concurrency`` keeps the cache
and changing ``temperature`` does not) and ``cacheable`` (False for teachers whose answers are
instant and defined by code, where a cache could only go stale).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import inspect
import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
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
                        top_p: float = 1.0, batch_size: int = 16, seed: int = 0, dtype: str = "float32"):
    """A local model directory (``save_pretrained``) generating with HF ``generate`` on this machine."""
    from nemotron_cascade import models
    from nemotron_cascade.generation.hf import HFGenerator

    generator = HFGenerator(models.load_model(model_path, dtype), models.load_tokenizer(model_path), batch_size)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    return GeneratorTeacher("transformers", generator, params, {
        "model_path": str(model_path), "model_files": _dir_stamp(model_path), "dtype": dtype,
        "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed})


class TeacherServerError(RuntimeError):
    """The server refused a request (a 4xx other than 429) or stayed unreachable after the retries."""


class OpenAITeacher(BatchTeacher):
    """An OpenAI-compatible server (``vllm serve``, :mod:`nemotron_cascade.generation.serve`, ...).

    Endpoint: ``POST {base_url}/completions`` (``base_url`` as in the OpenAI SDK, ending in ``/v1``)
    with the prompt text we render, one HTTP request per (row, mode) asking ``n=k`` responses.
    Why the completions endpoint and not chat completions: the prompt is then byte-for-byte the
    one the student trains on (our ``/think``/``/no_think`` switch, the tool block, the SWE
    context files), whatever chat template the served model ships with, and it works with any
    server that hosts a ChatML model (Qwen, or DeepSeek-R1 distills served with a ChatML
    template). A teacher that only speaks its own chat template would need the chat endpoint
    with ``chat_template_kwargs={"enable_thinking": ...}``; that is not implemented here.

    ``api_key_env`` names the environment variable holding the key (never the key itself);
    ``None`` sends no ``Authorization`` header (a local vLLM needs none). Up to ``concurrency``
    requests are in flight at once (a thread pool per batch). Connection errors, timeouts, 429,
    5xx and malformed replies (cut short, not JSON, no ``choices``) are retried ``max_retries``
    times after ``backoff_s * 2**i`` seconds (times a jitter in [0.5, 1.5), capped at 60 s; at
    least a 429/503's ``Retry-After``); another 4xx fails at once with the server's message.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, max_tokens: int = 1024,
                 temperature: float = 0.6, top_p: float = 0.95, timeout_s: float = 600.0, max_retries: int = 5,
                 backoff_s: float = 1.0, concurrency: int = 8, seed: int | None = None):
        if concurrency < 1 or max_retries < 0:
            raise ValueError(f"openai teacher: need concurrency >= 1 and max_retries >= 0, "
                             f"got {concurrency} and {max_retries}")
        self.url = base_url.rstrip("/") + "/completions"
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(api_key_env)):  # a key pasted in: never echo it
                raise ValueError("openai teacher: api_key_env must be the *name* of an environment variable "
                                 "(e.g. OPENAI_API_KEY), not the key; put the key in that variable")
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"openai teacher: api_key_env names ${api_key_env}, which is not set")
            self.headers["Authorization"] = f"Bearer {key}"
        self.body = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        if seed is not None:
            self.body["seed"] = seed
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.concurrency = concurrency
        self.identity = {"base_url": base_url, **self.body}
        self._jitter = random.Random()

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        prompts = _prompts(rows, thinking, k)
        if not prompts:
            return []
        with concurrent.futures.ThreadPoolExecutor(min(self.concurrency, len(prompts))) as pool:
            futures = [pool.submit(self._complete, p, k) for p in prompts]
            try:
                choices = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        _warn_truncated("openai", sum(c.get("finish_reason") == "length" for cs in choices for c in cs),
                        len(prompts) * k, "max_tokens", self.body["max_tokens"])
        return [[c["text"] for c in cs] for cs in choices]

    def _complete(self, prompt: str, k: int) -> list[dict]:
        return self._post({**self.body, "prompt": prompt, "n": k}, lambda reply: _choices(reply, k))

    def _post(self, payload: dict, parse: Callable[[dict], list[dict]]):
        """``parse(reply)`` of the server's JSON reply, retrying what may pass: refused or reset
        connections, timeouts, 429, 5xx, and replies that are cut short, not JSON or lack their
        ``choices`` (a proxy's error page, a server restarting). 429/503 wait at least their
        ``Retry-After`` (capped at 60 s)."""
        data, attempts, last, wait = json.dumps(payload).encode(), self.max_retries + 1, "", 0.0
        for attempt in range(attempts):
            if attempt:
                backoff = min(60.0, self.backoff_s * 2 ** (attempt - 1)) * self._jitter.uniform(0.5, 1.5)
                time.sleep(max(backoff, wait))
            wait = 0.0
            request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = response.read()
                try:
                    reply = json.loads(body)
                except ValueError:
                    last = f"reply is not JSON ({len(body)} bytes): {body[:200]!r}"
                else:
                    try:
                        return parse(reply)
                    except (KeyError, TypeError, ValueError, AttributeError) as e:
                        last = f"unexpected reply: {type(e).__name__}: {e}: {json.dumps(reply)[:200]}"
            except urllib.error.HTTPError as e:
                message = _server_message(e)
                if e.code != 429 and e.code < 500:
                    raise TeacherServerError(f"openai teacher: POST {self.url} -> HTTP {e.code}: {message}") from None
                wait = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                last = f"HTTP {e.code}: {message}" + (f" (Retry-After {wait:g} s)" if wait else "")
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # refused, reset, timeout, cut
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            log.warning("openai teacher: POST %s attempt %d/%d failed: %s", self.url, attempt + 1, attempts, last)
        raise TeacherServerError(f"openai teacher: POST {self.url} failed after {attempts} attempts "
                                 f"(max_retries={self.max_retries}); last error: {last}. Is the server up?")


def _choices(reply: dict, k: int) -> list[dict]:
    """The ``k`` choices of a completions reply in index order; ValueError/KeyError/TypeError if malformed."""
    choices = reply["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, dict) and isinstance(c.get("text"), str)
                                                for c in choices):
        raise ValueError("'choices' is not a list of {'text': str, ...}")
    if len(choices) != k:
        raise ValueError(f"{len(choices)} choices for n={k}")
    return sorted(choices, key=lambda c: c.get("index", 0))


def _retry_after(value: str | None) -> float:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or an HTTP date), capped at 60; 0 if none."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            import email.utils

            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
    return min(60.0, max(0.0, seconds))


def _server_message(e: urllib.error.HTTPError) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start, else the reason."""
    try:
        body = e.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):  # a body cut short or reset
        body = ""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:500] or str(e.reason)


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
    from nemotron_cascade.generation.oracle import oracle_teacher  # oracle.py imports this module

    return {"oracle": oracle_teacher, "transformers": transformers_teacher, "openai": OpenAITeacher,
            "vllm": vllm_teacher}


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
