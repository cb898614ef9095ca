"""The openai teacher against a real local HTTP server that misbehaves on purpose.

One scripted server answers each request with the next behaviour of its list (then ``then``):
5xx, a reply slower than the client's timeout, a body cut short, a body that is not JSON, a 200
without ``choices``, 429 with and without ``Retry-After``, a connection reset mid-response, and
a server that dies. Every fault is retried a bounded number of times with back-off and ends in an
error that names the URL, the attempts and the last failure; finished work survives in the
teacher cache. (tests/generation/test_teachers.py covers the happy path, 400/404 and a closed port.)
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nemotron_cascade.data import world
from nemotron_cascade.data.teacher import TeacherGenerationError, cache_path, generate_responses, load_cache
from nemotron_cascade.generation.teachers import TeacherServerError, make_teacher

ROW = world.generate_tasks("math", "sft", 1, 0)[0]
TIMEOUT_S = 0.4  # the client's timeout; the "slow" behaviour sleeps past it


class ScriptedServer:
    """An OpenAI-style ``/v1/completions`` server whose behaviour per request comes from ``script``.

    Behaviours: ``"ok"``, an int status (an OpenAI error body), ``"slow"`` (answers after
    ``TIMEOUT_S * 3``), ``"truncated"`` (Content-Length promised, half sent, closed), ``"invalid"``
    (200 with an HTML page), ``"no_choices"`` (200 JSON without ``choices``), ``"429"`` /
    ``"429_retry_after"``, ``(status, headers)`` (an error with those headers), ``"reset"`` (headers
    and part of the body, then a TCP RST), ``"503_cut"`` (a 503 whose error body is cut short),
    ``"die"`` (reset and stop listening).
    """

    def __init__(self, script=(), then="ok", port: int = 0):
        self.script, self.then = list(script), then
        self.calls: list[tuple[float, str]] = []  # (time, behaviour) per request
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    what = server.script.pop(0) if server.script else server.then
                    server.calls.append((time.monotonic(), what))
                try:
                    server.behave(self, what, body)
                except OSError:  # the client gave up first (timeout): nothing to do
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _send(h, status: int, data: bytes, headers: dict | None = None, length: int | None = None):
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _reset(h):
        """Close with a TCP RST instead of a FIN (SO_LINGER on, 0 s)."""
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()

    def behave(self, h, what, body):
        ok = json.dumps({"id": "cmpl-1", "object": "text_completion", "choices": [
            {"index": j, "text": f"{body['prompt'][-10:]}#{j}", "finish_reason": "stop"}
            for j in range(body["n"])]}).encode()
        error = lambda m: json.dumps({"error": {"message": m, "type": "server_error"}}).encode()  # noqa: E731
        if what == "ok":
            self._send(h, 200, ok)
        elif isinstance(what, int):
            self._send(h, what, error("scripted failure"))
        elif what == "slow":
            time.sleep(TIMEOUT_S * 3)
            self._send(h, 200, ok)
        elif what == "truncated":
            self._send(h, 200, ok[: len(ok) // 2], length=len(ok))
            h.close_connection = True
        elif what == "invalid":
            self._send(h, 200, b"<html><body>502 Bad Gateway</body></html>")
        elif what == "no_choices":
            self._send(h, 200, json.dumps({"id": "cmpl-1", "object": "text_completion", "usage": {}}).encode())
        elif what == "429":
            self._send(h, 429, error("rate limited"))
        elif what == "429_retry_after":
            self._send(h, 429, error("rate limited"), {"Retry-After": "1"})
        elif isinstance(what, tuple):  # (status, headers)
            self._send(h, int(what[0]), error("rate limited"), what[1])
        elif what == "503_cut":
            data = error("overloaded, come back later")
            self._send(h, 503, data[:10], length=len(data))
            h.close_connection = True
        elif what == "reset":
            h.send_response(200)
            h.send_header("Content-Length", str(len(ok)))
            h.end_headers()
            h.wfile.write(ok[:20])
            h.wfile.flush()
            time.sleep(0.05)
            self._reset(h)
        elif what == "die":
            self._reset(h)
            threading.Thread(target=self.close, daemon=True).start()
        else:
            raise ValueError(what)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def scripted():
    servers = []

    def start(*args, **kwargs):
        servers.append(ScriptedServer(*args, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        try:
            s.close()
        except OSError:
            pass


def _teacher(url: str, **options):
    return make_teacher("openai", base_url=url, model="tiny", **{
        "max_tokens": 8, "timeout_s": TIMEOUT_S, "backoff_s": 0.02, "concurrency": 1, **options})


# behaviour -> what the final error must say about the last failure. The SDK's HTTP client (httpx)
# words a body cut short "peer closed connection without sending complete message body" where
# http.client said IncompleteRead; a 503 whose body is cut is a connection error before its status
# is read (the SDK reads the body inside the request).
FAULTS = {
    500: r"HTTP 500: scripted failure",
    502: r"HTTP 502: scripted failure",
    503: r"HTTP 503: scripted failure",
    "slow": r"(TimeoutError|timed out)",
    "truncated": r"(IncompleteRead|complete message body)",
    "invalid": r"reply is not JSON .*502 Bad Gateway",
    "no_choices": r"unexpected reply: KeyError: 'choices'",
    "429": r"HTTP 429: rate limited",
    "reset": r"(ConnectionResetError|Connection reset|IncompleteRead)",
    "503_cut": r"(HTTP 503|complete message body)",
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=str)
def test_a_fault_is_retried_then_fails_naming_url_attempts_and_last_error(scripted, fault):
    server = scripted(then=fault)
    teacher = _teacher(server.url, max_retries=2)
    start = time.monotonic()
    with pytest.raises(TeacherServerError) as e:
        teacher.respond([ROW], [True], 2)
    message = str(e.value)
    assert f"POST {server.url}/completions failed after 3 attempts (max_retries=2)" in message
    assert re.search(f"last error: .*{FAULTS[fault]}", message), message
    assert len(server.calls) == 3  # bounded: no more, no less
    assert time.monotonic() - start < 3 * TIMEOUT_S * 1.5 + 1


@pytest.mark.parametrize("fault", list(FAULTS), ids=str)
def test_a_transient_fault_costs_retries_not_the_answer(scripted, fault):
    server = scripted([fault, fault], then="ok")
    got = _teacher(server.url, max_retries=2).respond([ROW], [False], 2)
    assert [len(r) for r in got] == [2] and got[0][0].endswith("#0") and got[0][1].endswith("#1")
    assert [what for _, what in server.calls] == [fault, fault, "ok"]


def test_retries_back_off_exponentially(scripted):
    server = scripted(then=503)
    with pytest.raises(TeacherServerError, match="after 4 attempts"):
        _teacher(server.url, max_retries=3, backoff_s=0.1).respond([ROW], [True], 1)
    times = [t for t, _ in server.calls]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # backoff_s * 2**i times a jitter in [0.5, 1.5): lower bounds 0.05, 0.1, 0.2; upper 0.15, 0.3, 0.6
    for gap, base in zip(gaps, (0.1, 0.2, 0.4)):
        assert 0.5 * base - 0.01 <= gap < 1.5 * base + 0.15, gaps


def test_429_waits_for_retry_after_and_without_it_backs_off(scripted):
    server = scripted(["429_retry_after"], then="ok")
    start = time.monotonic()
    assert _teacher(server.url, max_retries=1).respond([ROW], [True], 1)
    assert time.monotonic() - start >= 0.95  # Retry-After: 1 beats a 0.02 s back-off
    server = scripted(["429", "429"], then="ok")
    start = time.monotonic()
    assert _teacher(server.url, max_retries=2).respond([ROW], [True], 1)
    assert time.monotonic() - start < 0.8  # no header: the short back-off
    with pytest.raises(TeacherServerError, match=r"HTTP 429: rate limited \(Retry-After 1 s\)"):
        _teacher(scripted(then="429_retry_after").url, max_retries=1).respond([ROW], [True], 1)


def _http_date(seconds_ahead: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + seconds_ahead))


# Retry-After forms the SDK reads (it replaced the hand-written parser): header -> the wait range
# before the retry, in seconds (back-off here: 0.02 s). An HTTP date has one-second resolution.
RETRY_AFTER = {
    "delta-seconds": ({"Retry-After": "1.5"}, 1.45, 2.2),
    "HTTP date": (lambda: {"Retry-After": _http_date(2)}, 0.9, 2.6),
    "milliseconds": ({"retry-after-ms": "400"}, 0.38, 1.0),
    "unparseable: the back-off": ({"Retry-After": "soon"}, 0.0, 0.6),
    "negative: the back-off": ({"Retry-After": "-4"}, 0.0, 0.6),
}


@pytest.mark.parametrize("form", list(RETRY_AFTER))
def test_retry_after_forms_set_the_wait(scripted, form):
    headers, low, high = RETRY_AFTER[form]
    server = scripted([("429", headers() if callable(headers) else headers)], then="ok")
    assert _teacher(server.url, max_retries=1).respond([ROW], [True], 1)
    gap = server.calls[1][0] - server.calls[0][0]
    assert low <= gap < high, (form, gap)


def test_a_retry_after_past_two_minutes_is_not_waited_for(scripted):
    """The SDK does not retry when the server asks for more than 120 s: the error says so at once
    (the hand-written client capped the wait at 60 s and retried)."""
    server = scripted([("429", {"Retry-After": "100000"})], then="ok")
    start = time.monotonic()
    with pytest.raises(TeacherServerError, match=r"after 1 attempts .*HTTP 429: rate limited \(Retry-After 100000 s\)"):
        _teacher(server.url, max_retries=3).respond([ROW], [True], 1)
    assert len(server.calls) == 1 and time.monotonic() - start < 1


def test_finished_batches_survive_a_server_that_dies_and_a_rerun_asks_only_the_rest(scripted, tmp_path):
    rows = world.generate_tasks("math", "sft", 6, 0) + world.generate_tasks("code", "sft", 6, 0)
    modes = [i % 2 == 0 for i in range(len(rows))]
    dying = scripted(["ok"] * 7 + ["die"], then=503)  # dies while answering the 8th request
    teacher = _teacher(dying.url, max_retries=2)
    path = cache_path(tmp_path, "openai", teacher.identity, 2)
    with pytest.raises(TeacherGenerationError) as e:
        generate_responses(rows, modes, teacher, k=2, cache_path=path, batch_size=3)
    message = str(e.value)
    # batches 1-2 finished (6 requests); batch 3 had one answer when the server died: asked again
    assert "requests 7-9 of the 12" in message and "6 of 12 finished requests are kept in" in message
    assert f"POST {dying.url}/completions failed after 3 attempts" in message
    assert "ConnectionRefusedError" in message or "Connection refused" in message  # nobody listens any more
    assert len(load_cache(path, 2)) == 6

    healthy = scripted(port=dying.port)  # the same URL, so the same cache file
    again = _teacher(healthy.url, max_retries=2)
    assert cache_path(tmp_path, "openai", again.identity, 2) == path
    got = generate_responses(rows, modes, again, k=2, cache_path=path, batch_size=3)
    assert len(healthy.calls) == 6  # only the rest
    prompts = [world.render_prompt(r, m) for r, m in zip(rows, modes)]
    assert got == [[f"{p[-10:]}#0", f"{p[-10:]}#1"] for p in prompts]
    assert len(load_cache(path, 2)) == 12
    # a third run asks nothing
    assert generate_responses(rows, modes, again, k=2, cache_path=path, batch_size=3) == got
    assert len(healthy.calls) == 6
