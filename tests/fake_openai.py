"""A fake OpenAI-compatible provider over real HTTP, for tests and benchmarks (never the main job).

One process can serve several endpoints (each its own port, API key and models), like a team's
real set-up: an OpenAI-compatible gateway, a vLLM box, a second account. litellm reaches a model
as `openai/<name>` with `api_base=<endpoint.url>`.

What it does, per request to `POST /v1/chat/completions`:
- 401 without the endpoint's key, 404 for a model it does not serve, 400 for a bad body;
- faults, drawn per request from a seeded RNG at the endpoint's `fault_rate` (kinds: `429`
  with Retry-After, `500`, `drop` (connection closed, no answer), `malformed` (200 with a body
  that is not JSON), `slow` (answers, after `slow_s`)), or scripted (`script`, one per request;
  also `400` (context too long), `401`, `404`, `empty` (200, empty body));
- otherwise an answer from the model's `answer(messages) -> str`, with usage counted by
  whitespace words (+3 per message), truncated to max_tokens.
It counts what it billed: an answer is billed when its 200 response was written whole (`slow`
answers included; the other faults are not billed). `ledger()` gives per model the requests
billed, prompt and completion tokens, and (with prices) the USD.

Run it alone: `python -m tests.fake_openai CONFIG.json` prints one JSON line with the endpoints'
URLs, then serves until SIGTERM; its ledger is written to `CONFIG.json.ledger.json` on every
billed answer (so a test can read it while it runs and after it stops).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import random
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Answer = Callable[[list[dict]], str]
FAULTS = ("429", "500", "drop", "malformed", "slow")
SCRIPT_ONLY = ("400", "401", "404", "empty")  # scripted kinds too: a request's own faults, a 200 with an empty body
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")


def words(text: str) -> int:
    return len(str(text).split())


def labeller(gold: dict[str, str], accuracy: float, labels: list[str], name: str) -> Answer:
    """An answer function for label features: finds which gold input the last user message holds,
    answers its label right with probability `accuracy` (fixed per model and input), else a wrong
    label. Answers in DSPy's ChatAdapter format when the prompt asks for `[[ ## field ## ]]`s,
    plain otherwise."""

    def answer(messages: list[dict]) -> str:
        last = str(messages[-1].get("content", ""))
        text = next((t for t in sorted(gold, key=len, reverse=True) if t in last), None)
        if text is None:
            label = labels[0]
        else:
            draw = int(hashlib.sha256(f"{name}|{text}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            label = gold[text] if draw < accuracy else labels[(labels.index(gold[text]) + 1) % len(labels)]
        prompt = " ".join(str(m.get("content", "")) for m in messages)
        fields = [f for f in _FIELD.findall(prompt) if f != "completed"]
        if fields:
            return f"[[ ## {fields[-1]} ## ]]\n{label}\n\n[[ ## completed ## ]]"
        return label

    return answer


@dataclasses.dataclass
class Model:
    name: str
    answer: Answer = lambda messages: str(messages[-1].get("content", ""))  # noqa: E731
    latency_s: float = 0.0
    input_usd_per_token: float = 0.0
    output_usd_per_token: float = 0.0
    gone_after: int | None = None  # answers this many requests, then 404 "does not exist" (retired mid-study)
    served: int = 0


@dataclasses.dataclass
class Endpoint:
    name: str
    models: dict[str, Model]
    api_key: str = "sk-fake"
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULTS
    retry_after_s: float = 0.2
    slow_s: float = 1.5
    seed: int = 0
    script: list[str] = dataclasses.field(default_factory=list)  # faults for the next requests, in order
    down: bool = False  # every request: 503
    down_after: int | None = None  # after this many requests to the endpoint, every request: 503 (an outage mid-study)
    url: str = ""


class FakeOpenAI:
    """Serves endpoints on loopback ports in daemon threads. `start()`, then `endpoint.url`."""

    def __init__(self, endpoints: list[Endpoint], ledger_path: Path | None = None) -> None:
        self.endpoints = {e.name: e for e in endpoints}
        self.ledger_path = ledger_path
        self.lock = threading.Lock()
        self.billed: dict[str, dict[str, float]] = {}
        self.events: list[tuple[str, str, str]] = []  # (endpoint, model, what happened)
        self.requests: list[tuple[float, str, str]] = []  # (time.monotonic(), endpoint, model) of every POST
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self._rngs = {e.name: random.Random(e.seed) for e in endpoints}

    # ------------------------------------------------------------------ accounting
    def _bill(self, endpoint: Endpoint, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        with self.lock:
            row = self.billed.setdefault(
                f"{endpoint.name}/{model.name}", {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}
            )
            row["requests"] += 1
            row["prompt_tokens"] += prompt_tokens
            row["completion_tokens"] += completion_tokens
            row["usd"] += prompt_tokens * model.input_usd_per_token + completion_tokens * model.output_usd_per_token
            self.events.append((endpoint.name, model.name, "billed"))
            if self.ledger_path is not None:
                tmp = self.ledger_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.billed))
                tmp.replace(self.ledger_path)

    def ledger(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return json.loads(json.dumps(self.billed))

    def total_usd(self) -> float:
        return sum(row["usd"] for row in self.ledger().values())

    def count(self, what: str) -> int:
        with self.lock:
            return sum(1 for _, _, event in self.events if event == what)

    def _served(self, endpoint: Endpoint) -> int:
        with self.lock:
            return sum(1 for _, name, _ in self.requests if name == endpoint.name)

    def _fault(self, endpoint: Endpoint) -> str | None:
        with self.lock:
            if endpoint.script:
                fault = endpoint.script.pop(0)
                return None if fault == "ok" else fault
            rng = self._rngs[endpoint.name]
            if endpoint.fault_rate and rng.random() < endpoint.fault_rate:
                return rng.choice(endpoint.faults)
        return None

    # ------------------------------------------------------------------ serving
    def start(self) -> FakeOpenAI:
        for endpoint in self.endpoints.values():
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler(endpoint))
            server.daemon_threads = True
            endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self, endpoint: Endpoint) -> type[http.server.BaseHTTPRequestHandler]:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
                fake.events.append((endpoint.name, "", f"{status}"))
                body = {"error": {"message": message, "type": kind, "code": str(status)}}
                self._send(status, json.dumps(body).encode(), headers)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": name, "object": "model"} for name in endpoint.models]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._error(404, "not found", "invalid_request_error")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.headers.get("Authorization") != f"Bearer {endpoint.api_key}":
                    return self._error(401, "Incorrect API key provided.", "invalid_request_error")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._error(404, f"no route {self.path}", "invalid_request_error")
                try:
                    body = json.loads(raw)
                    messages = body["messages"]
                    name = body["model"]
                except (ValueError, KeyError) as exc:
                    return self._error(400, f"bad request body: {exc}", "invalid_request_error")
                with fake.lock:
                    fake.requests.append((time.monotonic(), endpoint.name, name))
                model = endpoint.models.get(name)
                if model is None:
                    return self._error(404, f"The model `{name}` does not exist", "invalid_request_error")
                with fake.lock:
                    model.served += 1
                    gone = model.gone_after is not None and model.served > model.gone_after
                if gone:
                    return self._error(404, f"The model `{name}` does not exist", "invalid_request_error")
                if endpoint.down or (endpoint.down_after is not None and fake._served(endpoint) > endpoint.down_after):
                    return self._error(503, "service unavailable", "server_error")
                fault = fake._fault(endpoint)
                if fault == "429":
                    return self._error(429, "Rate limit reached", "rate_limit_error",
                                       {"Retry-After": f"{endpoint.retry_after_s:g}"})
                if fault == "400":
                    return self._error(400, "This model's maximum context length is 8 tokens", "invalid_request_error")
                if fault == "401":
                    return self._error(401, "Incorrect API key provided.", "invalid_request_error")
                if fault == "404":
                    return self._error(404, f"The model `{name}` does not exist", "invalid_request_error")
                if fault == "empty":
                    fake.events.append((endpoint.name, name, "empty"))
                    return self._send(200, b"")
                if fault == "500":
                    return self._error(500, "The server had an error", "server_error")
                if fault == "drop":
                    fake.events.append((endpoint.name, name, "drop"))
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return None
                if fault == "malformed":
                    fake.events.append((endpoint.name, name, "malformed"))
                    return self._send(200, b'{"id": "chatcmpl-x", "choices": [')
                if fault == "slow":
                    fake.events.append((endpoint.name, name, "slow"))
                    time.sleep(endpoint.slow_s)
                if model.latency_s:
                    time.sleep(model.latency_s)
                text = model.answer(messages)
                max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
                tokens = text.split(" ")
                if max_tokens is not None and len(text.split()) > int(max_tokens):
                    text = " ".join(tokens[: int(max_tokens)])
                prompt_tokens = sum(words(m.get("content", "")) + 3 for m in messages)
                completion_tokens = max(1, words(text))
                response = {
                    "id": f"chatcmpl-{random.getrandbits(48):x}", "object": "chat.completion", "created": int(time.time()),
                    "model": name,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                }
                self._send(200, json.dumps(response).encode())
                fake._bill(endpoint, model, prompt_tokens, completion_tokens)
                return None

        return Handler


def from_config(config: dict[str, Any], ledger_path: Path | None = None) -> FakeOpenAI:
    """Endpoints from JSON: {"endpoints": [{"name", "api_key", "fault_rate", "faults", "seed",
    "models": [{"name", "latency_s", "input_usd_per_token", "output_usd_per_token",
    "accuracy"}]}], "gold": {input: label}, "labels": [...]}. A model with `accuracy` answers
    with `labeller`; without, it echoes."""
    gold = config.get("gold") or {}
    labels = config.get("labels") or sorted(set(gold.values()))
    endpoints = []
    for raw in config["endpoints"]:
        models = {}
        for m in raw["models"]:
            extra = {k: m[k] for k in ("latency_s", "input_usd_per_token", "output_usd_per_token") if k in m}
            if "accuracy" in m:
                extra["answer"] = labeller(gold, float(m["accuracy"]), labels, f"{raw['name']}/{m['name']}")
            models[m["name"]] = Model(m["name"], **extra)
        settings = {k: raw[k] for k in ("api_key", "fault_rate", "retry_after_s", "slow_s", "seed", "down", "down_after") if k in raw}
        if "faults" in raw:
            settings["faults"] = tuple(raw["faults"])
        endpoints.append(Endpoint(raw["name"], models, **settings))
    return FakeOpenAI(endpoints, ledger_path)


def main(argv: list[str]) -> None:
    path = Path(argv[0])
    fake = from_config(json.loads(path.read_text()), ledger_path=path.with_suffix(".ledger.json")).start()
    print(json.dumps({name: e.url for name, e in fake.endpoints.items()}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
