"""Teacher backends: the openai client against a real local server and against scripted faults."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from nemotron_cascade.data import world
from nemotron_cascade.data.teacher import cache_path, generate_responses, load_cache
from nemotron_cascade.generation import serve
from nemotron_cascade.generation.oracle import NotAWorldRowError, is_world_row
from nemotron_cascade.generation.teachers import TeacherServerError, make_teacher, teacher_from_config

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
    """A scripted OpenAI-style server: answers ``statuses`` in turn (then 200, or ``reply(body)``),
    records every call and the most requests it ever had in flight at once."""

    def __init__(self, statuses=(), delay_s: float = 0.0, message: str = "scripted failure", reply=None):
        self.statuses, self.delay_s, self.message, self.reply = list(statuses), delay_s, message, reply
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
                if status == 200 and fake.reply is not None:  # a scripted 200 reply: a dict or raw bytes
                    payload = fake.reply(body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
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


def test_transformers_teacher_on_the_embedded_engine_answers_what_hf_generate_answers(model_dir):
    """The local teacher's engine is a setting: greedy, the embedded decoder gives HF's answers."""
    def local(engine):
        return make_teacher("transformers", model_path=str(model_dir), max_new_tokens=8, temperature=0.0,
                            batch_size=4, engine=engine)

    assert local("embedded").respond(ROWS, MODES, 1) == local("hf").respond(ROWS, MODES, 1)
    assert local("auto").identity["engine"] == "embedded"  # the tiny model: the embedded decoder
    with pytest.raises(ValueError, match="engine must be 'auto', 'hf' or 'embedded'"):
        local("vllm")


def test_transformers_teacher_auto_falls_back_to_hf_for_a_model_the_decoder_does_not_take(tmp_path, model_dir):
    """``auto`` on an untied model (the embedded decoder refuses it) generates with HF ``generate``."""
    from nemotron_cascade import models

    model = models.load_model(str(model_dir), "float32")
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    model.save_pretrained(tmp_path / "untied")
    models.load_tokenizer(str(model_dir)).save_pretrained(tmp_path / "untied")
    teacher = make_teacher("transformers", model_path=str(tmp_path / "untied"), max_new_tokens=4, temperature=0.0)
    assert teacher.identity["engine"] == "hf"
    assert all(len(r) == 1 for r in teacher.respond(ROWS, MODES, 1))


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


# -- the openai backend: stop sequence, malformed replies, cut answers -------------------------------

@pytest.mark.parametrize("options, sent", [
    ({}, ["<|im_end|>"]),                       # default: the chat template's end of turn (chat.IM_END)
    ({"stop": ["</s>", "<|im_end|>"]}, ["</s>", "<|im_end|>"]),  # configurable
    ({"stop": "<|im_end|>"}, ["<|im_end|>"]),   # one string is a list of one
    ({"stop": None}, None),                     # none: nothing sent, the server's own rule
])
def test_requests_stop_at_the_end_of_turn(fake, options, sent):
    server = fake()
    teacher = _openai(server.url, **options)
    teacher.respond(ROWS[:1], MODES[:1], 1)
    assert server.calls[0]["body"].get("stop") == sent
    assert teacher.identity.get("stop") == sent  # it decides the answers: part of the cache key


def _choice(text="ok", **extra):
    return {"index": 0, "text": text, "finish_reason": "stop", **extra}


# a 200 reply the project's check rejects -> what the error says about it
MALFORMED = {
    "empty choices": ({"choices": []}, r"0 choices for n=1"),
    "missing text": ({"choices": [{"index": 0, "finish_reason": "stop"}]}, r"'choices' is not a list of"),
    "text not a string": ({"choices": [_choice(text=None)]}, r"'choices' is not a list of"),
    "wrong n": ({"choices": [_choice(), {**_choice(), "index": 1}]}, r"2 choices for n=1"),
    "no choices key": ({"object": "text_completion"}, r"unexpected reply: KeyError: 'choices'"),
    "not JSON": (b"<html>502 Bad Gateway</html>", r"reply is not JSON .*502 Bad Gateway"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_reply_is_retried_then_rejected_naming_the_request(fake, case):
    reply, reason = MALFORMED[case]
    server = fake(reply=lambda body: reply)
    with pytest.raises(TeacherServerError) as e:
        _openai(server.url, max_retries=1).respond(ROWS[:1], [True], 1)
    message = str(e.value)
    assert f"request {ROWS[0]['id']} (thinking): POST {server.url}/completions failed after 2 attempts" in message
    assert re.search(f"last error: .*{reason}", message), message
    assert len(server.calls) == 2  # retried once (max_retries=1), no more


def test_answers_cut_by_max_tokens_are_kept_and_counted(fake, caplog):
    server = fake(reply=lambda body: {"choices": [_choice("half an ans", finish_reason="length"),
                                                  {**_choice("whole"), "index": 1}]})
    with caplog.at_level(logging.WARNING, logger="nemotron_cascade.generation.teachers"):
        got = _openai(server.url).respond(ROWS[:1], [True], 2)
    assert got == [["half an ans", "whole"]]
    assert "1 of 2 responses hit max_tokens=8 (cut short)" in caplog.text


def test_the_server_url_can_come_from_an_environment_variable(fake, monkeypatch):
    server = fake()
    monkeypatch.setenv("NC_TEST_TEACHER_URL", server.url)
    teacher = make_teacher("openai", base_url=None, base_url_env="NC_TEST_TEACHER_URL", model="tiny")
    assert teacher.respond(ROWS[:1], MODES[:1], 1) and len(server.calls) == 1
    assert teacher.identity["base_url"] == server.url  # the cache follows the server actually asked
    monkeypatch.delenv("NC_TEST_TEACHER_URL")
    with pytest.raises(ValueError, match=r"\$NC_TEST_TEACHER_URL is not set and base_url is empty"):
        make_teacher("openai", base_url_env="NC_TEST_TEACHER_URL", model="tiny")


def test_the_local_server_cuts_at_a_stop_string(server):
    """serve.py honours ``stop`` as OpenAI and vLLM do: the text ends before the first stop string."""
    prompt = world.render_prompt(ROWS[0], False)

    def complete(**extra):
        body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 8, "temperature": 0, **extra}).encode()
        request = urllib.request.Request(server.url + "/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)["choices"][0]

    full = complete()["text"]
    assert len(full) >= 3, full
    stop = full[1:3]
    cut = complete(stop=[stop, "<|im_end|>"])
    assert cut["text"] == full[:full.find(stop)] and cut["finish_reason"] == "stop"


# -- the oracle refuses real rows --------------------------------------------------------------------

REAL = {"id": "acemath_instruct-0123456789ab", "domain": "math", "split": "sft", "source": "acemath_instruct",
        "prompt": "What is 2 + 2?", "answer": "4"}


@pytest.mark.parametrize("row, world_row, says", [
    (ROWS[0], True, None),                                   # a world task: answered
    (REAL, False, "is not a task of the embedded world"),     # a real source's row (stamped by map_rows)
    ({**REAL, "source": "world"}, False, "lacks the field 'steps'"),  # world-looking, without the world's fields
    ({**ROWS[0], "domain": "chemistry"}, False, "is not a task of the embedded world"),  # a domain the world lacks
])
def test_the_oracle_refuses_a_row_that_is_not_a_world_task(row, world_row, says):
    oracle = make_teacher("oracle")
    assert is_world_row(row) == (world_row or says == "lacks the field 'steps'")
    if says is None:
        assert oracle.respond([row], [True], 1) == [[world.oracle_response(row, True)]]
        return
    with pytest.raises(NotAWorldRowError) as e:
        oracle.respond([ROWS[1], row], [True, True], 1)
    message = str(e.value)
    assert says in message and repr(row["id"]) in message and f"source {row.get('source', 'world')}" in message
    assert "set teacher.backend" in message and "`dataset`" in message


def test_the_oracle_refuses_every_real_source_row():
    """The rows the mappers make from the source fixtures (the Hub cards' columns): all refused, the
    error counting them."""
    from nemotron_cascade.data.sources import SOURCES, map_rows

    fixtures = Path(__file__).parents[1] / "data" / "fixtures" / "sources"
    rows = []
    for name in sorted(SOURCES):
        path = fixtures / f"{name}.jsonl"
        if path.exists():
            rows += map_rows(name, [json.loads(line) for line in path.read_text().splitlines() if line.strip()])[0]
    assert len({r["source"] for r in rows}) >= 10 and not any(is_world_row(r) for r in rows)
    with pytest.raises(NotAWorldRowError, match=rf"\({len(rows) - 1} more such rows in this batch\)"):
        make_teacher("oracle").respond(rows, [True] * len(rows), 1)


# -- the dataset teacher with an openai fallback: references free, the fallback cached ---------------

def _with_refs(row: dict, **refs) -> dict:
    return {**row, "source": "fixture_source", "reference_responses": refs}


def test_dataset_teacher_asks_the_openai_fallback_only_for_rows_without_a_reference_and_caches_it(fake, tmp_path):
    server = fake()
    thinking_ref = "<think>\nadd the tens\n</think>\n\nThe answer is 7."
    rows = [_with_refs(ROWS[0], thinking=thinking_ref), _with_refs(ROWS[1], plain="print(1)"),
            {**ROWS[2], "source": "fixture_source"}, {**ROWS[3], "source": "fixture_source"}]
    modes = [True, False, True, False]
    backends = {"dataset": {"fallback": "openai"},
                "openai": {"base_url": server.url, "model": "tiny", "max_tokens": 8, "backoff_s": 0.01}}
    teacher = teacher_from_config("dataset", backends)
    path = cache_path(tmp_path, "dataset", teacher.identity, 2)
    got = generate_responses(rows, modes, teacher, 2, path)
    prompts = [world.render_prompt(r, m) for r, m in zip(rows, modes)]
    assert got[:2] == [[thinking_ref], ["print(1)"]]  # the references, once each (k=2: see dataset_teacher)
    assert got[2:] == [[f"{p[-12:]}#0", f"{p[-12:]}#1"] for p in prompts[2:]]  # the model's k answers
    assert [c["body"]["prompt"] for c in server.calls] == prompts[2:]  # only the rows without a reference
    assert sorted(r["id"] for r in map(json.loads, path.read_text().splitlines())) == sorted(
        r["id"] for r in rows[2:])  # only the model's answers are cached
    again = teacher_from_config("dataset", {**backends, "dataset": {"fallback": "openai", "skip_missing": True}})
    assert cache_path(tmp_path, "dataset", again.identity, 2) == path  # its own options do not decide the model's
    assert generate_responses(rows, modes, again, 2, path) == got and len(server.calls) == 2  # nothing asked again
    assert len(load_cache(path, 2)) == 2
