"""Teacher backends: the openai client against a real local server and against scripted faults."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nemotron_cascade.data import world
from nemotron_cascade.generation import serve
from nemotron_cascade.generation.teachers import TeacherServerError, make_teacher

ROWS = [world.generate_tasks(d, "sft", 1, 0)[0] for d in ("math", "code", "general", "instruction_following")]
MODES = [True, False, True, False]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    from nemotron_cascade import models

    model = models.build_tiny_model(tokenizer, models.TinyModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))
    path = tmp_path_factory.mktemp("teacher_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def server(model_dir):
    """The serve module's server for the saved tiny model, in a thread, on a free port."""
    from nemotron_cascade import models

    srv = serve.make_server(models.load_model(str(model_dir)), models.load_tokenizer(str(model_dir)), "tiny")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


class FakeServer:
    """A scripted OpenAI-style server: answers ``statuses`` in turn (then 200), records every call
    and the most requests it ever had in flight at once."""

    def __init__(self, statuses=(), delay_s: float = 0.0, message: str = "scripted failure"):
        self.statuses, self.delay_s, self.message = list(statuses), delay_s, message
        self.calls: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.calls.append({"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
                    status = fake.statuses.pop(0) if fake.statuses else 200
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                time.sleep(fake.delay_s)
                with fake.lock:
                    fake.in_flight -= 1
                payload = {"choices": [{"index": j, "text": f"{body['prompt'][-12:]}#{j}", "finish_reason": "stop"}
                                       for j in range(body["n"])]} if status == 200 else \
                    {"error": {"message": fake.message, "type": "invalid_request_error"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def fake():
    servers = []

    def start(*args, **kwargs):
        servers.append(FakeServer(*args, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _openai(url: str, **options):
    return make_teacher("openai", base_url=url, model="tiny", **{"backoff_s": 0.01, "max_tokens": 8, **options})


def test_openai_teacher_over_http_answers_what_the_local_model_answers(server, model_dir):
    """Greedy, one prompt at a time on both sides: the HTTP path adds nothing and loses nothing
    (same rendered prompt, same tokens, same decoding)."""
    remote = _openai(server.url, temperature=0.0, concurrency=3)
    local = make_teacher("transformers", model_path=str(model_dir), max_new_tokens=8, temperature=0.0, batch_size=1)
    got = remote.respond(ROWS, MODES, 1)
    assert got == local.respond(ROWS, MODES, 1)
    assert all(len(r) == 1 and r[0] for r in got)


def test_openai_teacher_returns_k_sampled_responses_per_request(server):
    got = _openai(server.url, temperature=1.0, concurrency=2).respond(ROWS, MODES, 3)
    assert [len(r) for r in got] == [3] * len(ROWS)
    assert len({text for r in got for text in r}) > 1  # sampled, not one copy


def test_server_lists_its_model_and_rejects_another_at_once(server):
    with urllib.request.urlopen(server.url + "/models", timeout=10) as r:
        assert [m["id"] for m in json.load(r)["data"]] == ["tiny"]
    teacher = make_teacher("openai", base_url=server.url, model="other", max_retries=3, backoff_s=5.0)
    start = time.monotonic()
    with pytest.raises(TeacherServerError, match=r"HTTP 404: The model `other` does not exist"):
        teacher.respond(ROWS[:1], MODES[:1], 1)
    assert time.monotonic() - start < 2  # a 404 is not retried


def test_concurrency_bounds_the_requests_in_flight(fake):
    server = fake(delay_s=0.15)
    rows, modes = ROWS * 2, MODES * 2
    start = time.monotonic()
    got = _openai(server.url, concurrency=3).respond(rows, modes, 2)
    assert server.max_in_flight == 3  # 8 requests, 3 at a time
    assert time.monotonic() - start < 0.15 * len(rows)  # faster than one by one
    # answers come back in request order whatever order they finished in
    assert got == [[f"{world.render_prompt(r, m)[-12:]}#{j}" for j in range(2)] for r, m in zip(rows, modes)]


@pytest.mark.parametrize("status", [503, 429, 500])
def test_overload_and_server_errors_are_retried(fake, status):
    server = fake(statuses=[status, status])
    got = _openai(server.url, max_retries=3).respond(ROWS[:1], MODES[:1], 2)
    assert len(server.calls) == 3 and len(got[0]) == 2


def test_a_client_error_fails_at_once_with_the_servers_message(fake):
    server = fake(statuses=[400], message="prompt is longer than the context window")
    with pytest.raises(TeacherServerError, match=r"HTTP 400: prompt is longer than the context window"):
        _openai(server.url, max_retries=5).respond(ROWS[:1], MODES[:1], 1)
    assert len(server.calls) == 1


def test_a_server_that_is_down_gives_a_clear_error_after_bounded_retries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    start = time.monotonic()
    with pytest.raises(TeacherServerError) as e:
        _openai(url, max_retries=2, backoff_s=0.05, timeout_s=2).respond(ROWS[:1], MODES[:1], 1)
    assert f"POST {url}/completions failed after 3 attempts" in str(e.value)
    assert time.monotonic() - start < 5


def test_the_api_key_comes_from_the_named_variable(fake, monkeypatch):
    server = fake()
    monkeypatch.setenv("NC_TEST_TEACHER_KEY", "s3cret")
    teacher = _openai(server.url, api_key_env="NC_TEST_TEACHER_KEY")
    teacher.respond(ROWS[:1], MODES[:1], 1)
    assert server.calls[0]["headers"]["authorization"] == "Bearer s3cret"  # header names are case-blind
    assert "s3cret" not in json.dumps(teacher.identity)  # never in the cache key
    monkeypatch.delenv("NC_TEST_TEACHER_KEY")
    with pytest.raises(ValueError, match="NC_TEST_TEACHER_KEY"):
        _openai(server.url, api_key_env="NC_TEST_TEACHER_KEY")


def test_make_teacher_checks_backend_and_options_by_name():
    with pytest.raises(KeyError, match="unknown teacher backend 'gpt'"):
        make_teacher("gpt")
    with pytest.raises(TypeError, match="bad options"):
        make_teacher("openai", base_url="http://x/v1", model="m", max_new_tokens=8)  # it is max_tokens here


def test_vllm_backend_says_how_to_install_it():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(ImportError, match=r"pip install '\.\[gpu\]'"):
        make_teacher("vllm", model_path="some/model")


def test_oracle_answers_k_identical_copies_and_one_row_by_call():
    teacher = make_teacher("oracle", terse_share={"math": 1.0})
    got = teacher.respond(ROWS, MODES, 2)
    expected = [world.oracle_response(r, m, terse_share={"math": 1.0}) for r, m in zip(ROWS, MODES)]
    assert got == [[e, e] for e in expected]
    assert teacher(ROWS[0], True) == expected[0]


def test_serve_module_runs_as_a_command(model_dir):
    proc = subprocess.Popen([sys.executable, "-m", "nemotron_cascade.generation.serve", "--model", str(model_dir),
                             "--port", "0", "--served-model-name", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()  # "serving tiny on http://127.0.0.1:PORT/v1"
        assert line.startswith("serving tiny on http://127.0.0.1:"), line
        got = _openai(line.split()[-1], temperature=0.0).respond(ROWS[:2], MODES[:2], 2)
        assert [len(r) for r in got] == [2, 2] and got[0][0] == got[0][1]  # greedy: n copies agree
    finally:
        proc.terminate()
        proc.wait(timeout=10)
