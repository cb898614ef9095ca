"""The ``openai`` teacher: an OpenAI-compatible server through the official ``openai`` SDK.

``vllm serve``, :mod:`nemotron_cascade.generation.serve` or any server speaking the completions API.
Endpoint: ``POST {base_url}/completions`` (``base_url`` as in the SDK, ending in ``/v1``) with the
prompt text we render, one request per (row, mode) asking ``n=k`` responses, stopping at ``stop``
(default: the chat template's end-of-turn marker :data:`~nemotron_cascade.chat.IM_END`; a Qwen3
*Base* checkpoint's ``generation_config.json`` names ``<|endoftext|>``, so a server hosting one
would otherwise run every answer to ``max_tokens``).

Why the completions endpoint and not chat completions: the prompt is then byte-for-byte the one
the student trains on (our ``/think``/``/no_think`` switch, the tool block, the SWE context files),
whatever chat template the served model ships with. A teacher that only speaks its own chat
template would need the chat endpoint with ``chat_template_kwargs={"enable_thinking": ...}``; that
is not implemented here.

What the SDK does (``openai`` 3.63, pinned in the ``gpu`` and ``test`` extras): the HTTP client,
``timeout_s`` (per request), and the retries: up to ``max_retries`` of connection errors,
timeouts, 408, 409, 429 and 5xx; a ``Retry-After`` (or ``retry-after-ms``) of up to 120 s is waited
exactly, a longer one is not retried (the error names it). One thing is ours: between retries
without ``Retry-After`` the SDK waits ``backoff_s * 2**i`` times a jitter in [0.5, 1.5), capped at
60 s (the SDK's own starts at a fixed 0.5 s; ``_TeacherClient`` overrides that one method).

What the project checks on top: a reply the server sends with 200 that is not JSON, lacks
``choices``, has a choice without ``text`` or not ``n`` choices is *malformed* (a proxy's error
page, a server restarting); it is retried within the same budget of ``max_retries + 1`` attempts,
then fails with an error naming the request (row id and mode), the URL, the attempts and the last
failure. Another 4xx fails at once with the server's message. Answers cut by ``max_tokens``
(``finish_reason: length``) are kept and counted in a warning.

``api_key_env`` names the environment variable holding the key (never the key itself); without it
the SDK sends the placeholder key ``EMPTY`` (what ``vllm serve`` without ``--api-key`` ignores),
never ``$OPENAI_API_KEY``. ``base_url_env`` names a variable whose value, when set, replaces
``base_url`` (a cluster's server address stays out of the config). Up to ``concurrency``
requests are in flight at once.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import os
import random
import re
import threading
import time

from nemotron_cascade import chat
from nemotron_cascade.generation.teachers import BatchTeacher, TeacherServerError, _prompts, _warn_truncated

log = logging.getLogger(__name__)
_RETRY_AFTER_MAX_S = 120.0  # the SDK's MAX_RETRY_AFTER_DELAY: a longer Retry-After is not retried
_jitter = random.Random()


def _backoff(backoff_s: float, retries_done: int) -> float:
    """The wait before retry ``retries_done + 1`` when the server named none."""
    return min(60.0, backoff_s * 2 ** retries_done) * _jitter.uniform(0.5, 1.5)


def _env_name(value, key: str) -> str:
    """``value`` checked to be the *name* of an environment variable (never echoes a pasted secret)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(value)):
        raise ValueError(f"openai teacher: {key} must be the *name* of an environment variable "
                         f"(e.g. OPENAI_API_KEY), not the value; put the value in that variable")
    return str(value)


def _resolve(base_url: str | None, base_url_env: str | None, api_key_env: str | None) -> tuple[str, str | None]:
    """The server URL (``$base_url_env`` when set, else ``base_url``) and the API key (or None)."""
    url = base_url
    if base_url_env and os.environ.get(_env_name(base_url_env, "base_url_env")):
        url = os.environ[base_url_env]
    if not url:
        where = f"${base_url_env} is not set and " if base_url_env else ""
        raise ValueError(f"openai teacher: no server URL: {where}base_url is empty; set teacher.backends.<name>."
                         f"base_url or export the variable named by base_url_env")
    key = None
    if api_key_env:
        key = os.environ.get(_env_name(api_key_env, "api_key_env"))
        if not key:
            raise ValueError(f"openai teacher: api_key_env names ${api_key_env}, which is not set")
    return str(url).rstrip("/"), key


def _client_class(backoff_s: float):
    """``openai.OpenAI`` waiting ``_backoff(backoff_s, i)`` between retries the server gave no
    ``Retry-After`` for (a class per teacher: the SDK's ``with_options`` copies keep it)."""
    import openai

    class _TeacherClient(openai.OpenAI):
        def _calculate_retry_timeout(self, remaining_retries, options, response_headers=None) -> float:
            after = self._parse_retry_after_header(response_headers)
            if after is not None and math.isfinite(after) and 0 < after <= _RETRY_AFTER_MAX_S:
                return after
            return _backoff(backoff_s, options.get_max_retries(self.max_retries) - remaining_retries)

    return _TeacherClient


class OpenAITeacher(BatchTeacher):
    """An OpenAI-compatible server through the ``openai`` SDK (see the module docstring)."""

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_env: str | None = None,
                 max_tokens: int = 1024, temperature: float = 0.6, top_p: float = 0.95, timeout_s: float = 600.0,
                 max_retries: int = 5, backoff_s: float = 1.0, concurrency: int = 8, seed: int | None = None,
                 stop: str | list[str] | tuple[str, ...] | None = (chat.IM_END,), base_url_env: str | None = None):
        if concurrency < 1 or max_retries < 0 or not model:
            raise ValueError(f"openai teacher: need a model, concurrency >= 1 and max_retries >= 0, "
                             f"got {model!r}, {concurrency} and {max_retries}")
        try:
            import openai
        except ImportError as e:
            raise ImportError("the openai teacher needs the openai SDK: pip install '.[gpu]' "
                              "(or openai==3.63.0)") from e
        url, key = _resolve(base_url, base_url_env, api_key_env)
        self.url = url + "/completions"
        self.body = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        if stop:  # None or []: the server's own stop rule only
            self.body["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if seed is not None:
            self.body["seed"] = seed
        self.max_retries, self.backoff_s, self.concurrency = max_retries, backoff_s, concurrency
        self.identity = {"base_url": url, **self.body}
        self._local = threading.local()  # per request thread: the attempts of the request in flight
        http = openai.DefaultHttpxClient(event_hooks={"request": [self._on_request], "response": [self._on_response]})
        self.client = _client_class(backoff_s)(base_url=url, api_key=key or "EMPTY", max_retries=max_retries,
                                               timeout=timeout_s, http_client=http)
        # the same client (one connection pool) with n retries left, for the attempts after a malformed reply
        self._clients = {n: self.client.with_options(max_retries=n) for n in range(max_retries + 1)}

    @property
    def headers(self) -> dict[str, str]:
        """The authentication headers every request carries."""
        return dict(self.client.auth_headers)

    def respond(self, rows: list[dict], thinking: list[bool], k: int = 1) -> list[list[str]]:
        prompts = _prompts(rows, thinking, k)
        if not prompts:
            return []
        labels = [f"request {row.get('id')} ({'thinking' if mode else 'plain'})" for row, mode in zip(rows, thinking)]
        with concurrent.futures.ThreadPoolExecutor(min(self.concurrency, len(prompts))) as pool:
            futures = [pool.submit(self._complete, p, k, label) for p, label in zip(prompts, labels)]
            try:
                choices = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        _warn_truncated("openai", sum(c.get("finish_reason") == "length" for cs in choices for c in cs),
                        len(prompts) * k, "max_tokens", self.body["max_tokens"])
        return [[c["text"] for c in cs] for cs in choices]

    def _complete(self, prompt: str, k: int, label: str) -> list[dict]:
        """The ``k`` choices of one request; the SDK retries transport and HTTP failures, this loop
        malformed replies, all within ``max_retries + 1`` attempts (counted by the request hook)."""
        import openai

        local, attempts = self._local, self.max_retries + 1
        local.attempts, local.status, local.label = 0, None, label
        while True:
            client = self._clients[max(0, attempts - local.attempts - 1)]
            try:
                raw = client.completions.with_raw_response.create(prompt=prompt, n=k, **self.body)
            except openai.APIStatusError as e:
                raise self._status_error(e, label) from None
            except openai.APIConnectionError as e:
                raise self._failed(label, _connection_reason(e)) from None
            try:
                return _choices(json.loads(raw.content), k)
            except ValueError as e:  # JSONDecodeError is one
                reason = _malformed(raw.content, e)
            except (KeyError, TypeError, AttributeError) as e:
                reason = f"unexpected reply: {type(e).__name__}: {e}: {raw.content[:200]!r}"
            if local.attempts >= attempts:
                raise self._failed(label, reason)
            log.warning("openai teacher: %s: POST %s attempt %d/%d failed: %s", label, self.url, local.attempts,
                        attempts, reason)
            time.sleep(_backoff(self.backoff_s, local.attempts - 1))

    def _on_request(self, request) -> None:
        """Counts the attempts of the request in flight and logs the failure of the previous one."""
        local = self._local
        local.attempts, status = getattr(local, "attempts", 0) + 1, getattr(local, "status", None)
        if local.attempts > 1 and status != "replied":
            reason = f"HTTP {status}" if status else "no reply (a connection error or a timeout)"
            log.warning("openai teacher: %s: POST %s attempt %d/%d failed: %s; retrying", getattr(local, "label", "?"),
                        self.url, local.attempts - 1, self.max_retries + 1, reason)
        local.status = None

    def _on_response(self, response) -> None:
        """Keeps an HTTP error status for the next attempt's log line (a 200 is judged by ``_complete``)."""
        self._local.status = response.status_code if response.status_code >= 400 else "replied"

    def _failed(self, label: str, reason: str) -> TeacherServerError:
        attempts = self._local.attempts
        log.warning("openai teacher: %s: POST %s attempt %d/%d failed: %s", label, self.url, attempts,
                    self.max_retries + 1, reason)
        return TeacherServerError(f"openai teacher: {label}: POST {self.url} failed after {attempts} attempts "
                                  f"(max_retries={self.max_retries}); last error: {reason}. Is the server up?")

    def _status_error(self, e, label: str) -> TeacherServerError:
        """A retryable status (the SDK's: 408, 409, 429, 5xx) that stayed: the attempts' error; another
        4xx: the server refused the request."""
        code, message = e.status_code, _server_message(e)
        if code in (408, 409, 429) or code >= 500:
            after = e.response.headers.get("retry-after")
            return self._failed(label, f"HTTP {code}: {message}" + _seconds(after))
        return TeacherServerError(f"openai teacher: {label}: POST {self.url} -> HTTP {code}: {message}")


def _choices(reply: dict, k: int) -> list[dict]:
    """The ``k`` choices of a completions reply in index order; ValueError/KeyError/TypeError if malformed."""
    choices = reply["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, dict) and isinstance(c.get("text"), str)
                                                for c in choices):
        raise ValueError("'choices' is not a list of {'text': str, ...}")
    if len(choices) != k:
        raise ValueError(f"{len(choices)} choices for n={k}")
    return sorted(choices, key=lambda c: c.get("index", 0))


def _malformed(body: bytes, e: ValueError) -> str:
    try:
        json.loads(body)
    except ValueError:
        return f"reply is not JSON ({len(body)} bytes): {body[:200]!r}"
    return f"unexpected reply: ValueError: {e}: {body[:200]!r}"


def _connection_reason(e: BaseException) -> str:
    """The SDK's error and its root cause (refused, reset, cut short, timed out)."""
    root = e
    while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
        root = root.__cause__ or root.__context__
    return f"{type(e).__name__}: {e}" + (f" ({type(root).__name__}: {root})" if root is not e else "")


def _server_message(e) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start, else the SDK's message."""
    body = e.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body[:500]
    return str(e.message)


def _seconds(retry_after: str | None) -> str:
    """`` (Retry-After 3 s)`` for an error message; empty without the header."""
    if not retry_after:
        return ""
    try:
        return f" (Retry-After {float(retry_after):g} s)"
    except ValueError:
        return f" (Retry-After {retry_after})"
