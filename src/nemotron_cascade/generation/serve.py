"""A minimal OpenAI-compatible server for a local model: ``/v1/completions`` and ``/v1/models``.

    python -m nemotron_cascade.generation.serve --model PATH [--host 127.0.0.1] [--port 8000]

For tests and for users without vLLM: the ``openai`` teacher talks to it as to ``vllm serve``.
Requests are handled in threads; generation goes through :class:`HFGenerator` under one lock (one
request at a time). The subset of the completions API the teacher uses: ``prompt`` (a string or a
list of strings), ``max_tokens`` (default 16, as OpenAI), ``temperature`` (default 1), ``top_p``,
``n``, ``seed``, ``stop`` (a string or a list of strings: each text is cut before the first one it
holds, as OpenAI and vLLM do; generation itself already ends at the chat template's end-of-turn
token, see :class:`HFGenerator`); choices in OpenAI order (prompt by prompt, ``n`` each) with
``finish_reason`` ``stop`` or ``length``, and ``usage``. Errors are OpenAI error objects (400 bad
request, 404 unknown model or path, 500 generation failure). Not implemented: streaming, logprobs,
echo.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nemotron_cascade.generation.base import SamplingParams
from nemotron_cascade.generation.hf import HFGenerator

log = logging.getLogger(__name__)
_UNSUPPORTED = ("stream", "logprobs", "echo", "best_of", "suffix")


class CompletionServer(ThreadingHTTPServer):
    """The HTTP server; ``generator`` completes prompts under ``lock``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], generator: HFGenerator, model_name: str):
        super().__init__(address, _Handler)
        self.generator, self.model_name, self.lock = generator, model_name, threading.Lock()
        self.seeds = itertools.count()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server: CompletionServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model",
                                                         "owned_by": "nemotron_cascade"}]})
        else:
            self._error(404, f"no route GET {self.path}")

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/completions":
            return self._error(404, f"no route POST {self.path}")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            prompts, params = _parse(body, self.server.model_name, next(self.server.seeds))
            stops = _stops(body.get("stop"))
        except BadRequest as e:
            return self._error(e.status, str(e))
        except ValueError as e:
            return self._error(400, f"bad JSON body: {e}")
        try:
            with self.server.lock:
                outs = self.server.generator.generate(prompts, params)
        except Exception as e:  # noqa: BLE001 - reported to the client as a server error
            log.exception("generation failed")
            return self._error(500, f"generation failed: {type(e).__name__}: {e}", "server_error")
        self._send(200, self._reply(prompts, outs, stops))

    def _reply(self, prompts: list[str], outs, stops: list[str]) -> dict:
        tok = self.server.generator.tokenizer
        choices = []
        for i, out in enumerate(outs):
            for j, c in enumerate(out):
                text, cut = _cut(c.text, stops)
                choices.append({"index": i * len(out) + j, "text": text, "logprobs": None,
                                "finish_reason": "stop" if c.finished or cut else "length"})
        prompt_tokens = sum(len(tok(p, add_special_tokens=False).input_ids) for p in prompts)
        completion_tokens = sum(len(c.token_ids) for out in outs for c in out)
        return {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
                "model": self.server.model_name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


def _parse(body, model_name: str, default_seed: int) -> tuple[list[str], SamplingParams]:
    """The prompts and sampling parameters of a completions request, or :class:`BadRequest`."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if body.get("model") not in (None, model_name):
        raise BadRequest(f"The model `{body['model']}` does not exist (serving `{model_name}`).", 404)
    unsupported = [k for k in _UNSUPPORTED if body.get(k)]
    if unsupported:
        raise BadRequest(f"not supported by this server: {unsupported}")
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not prompts or not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise BadRequest("prompt must be a string or a non-empty list of strings")
    try:
        max_tokens, n = int(body.get("max_tokens") or 16), int(body.get("n") or 1)
        temperature = float(1.0 if body.get("temperature") is None else body["temperature"])
        top_p = float(1.0 if body.get("top_p") is None else body["top_p"])
        seed = int(default_seed if body.get("seed") is None else body["seed"])
    except (TypeError, ValueError) as e:
        raise BadRequest(f"bad sampling parameter: {e}") from None
    if max_tokens < 1 or n < 1 or temperature < 0 or not 0 < top_p <= 1:
        raise BadRequest(f"need max_tokens >= 1, n >= 1, temperature >= 0, 0 < top_p <= 1; got "
                         f"{max_tokens}, {n}, {temperature}, {top_p}")
    return prompts, SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed)


def _stops(stop) -> list[str]:
    """The stop strings of a request (``None``, a string or a list of strings), or :class:`BadRequest`."""
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops):
        raise BadRequest("stop must be a non-empty string or a list of non-empty strings")
    return stops


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to (without) the first stop string it holds, and whether one was found."""
    ends = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(ends)], True) if ends else (text, False)


def make_server(model, tokenizer, model_name: str = "local", host: str = "127.0.0.1", port: int = 0,
                batch_size: int = 16) -> CompletionServer:
    """A server for ``model`` bound to ``host:port`` (0: any free port); call ``serve_forever``."""
    return CompletionServer((host, port), HFGenerator(model, tokenizer, batch_size), model_name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a save_pretrained directory (model and tokenizer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    parser.add_argument("--served-model-name", default=None, help="the model id clients send (default: --model)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from nemotron_cascade import models

    server = make_server(models.load_model(args.model, args.dtype), models.load_tokenizer(args.model),
                         args.served_model_name or args.model, args.host, args.port, args.batch_size)
    print(f"serving {server.model_name} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
