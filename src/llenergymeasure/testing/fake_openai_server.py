"""An OpenAI-compatible streaming server with known timing, on 127.0.0.1, in a thread.

Each request waits ``ttft_ms``, then streams ``n_tokens`` one-word tokens ``itl_ms`` apart
(chat or completions chunks, then a usage chunk and ``[DONE]``), so that a load generator's
measured TTFT, inter-token latency and rates can be checked against the truth. It also
serves ``/v1/models``, ``/health`` and a ``/metrics`` queue-time histogram. It is a test
double, not a server to measure::

    with FakeOpenAIServer(itl_ms=20, n_tokens=16) as server:
        config = {"mode": "serving", "serving": {"endpoint": server.url}, ...}
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "FakeServerSettings"]


@dataclass(frozen=True)
class FakeServerSettings:
    """How the fake server answers."""

    model: str = "fake-model"
    ttft_ms: float = 50.0
    itl_ms: float = 20.0
    n_tokens: int = 16
    usage: bool = True  # send the usage chunk
    openai: bool = True  # False: answer JSON that is not an OpenAI stream
    status: int = 200  # another status: every completion request fails with it
    minimal: bool = False  # no /models, no usage, no event-stream type, no [DONE]
    stop_after_requests: int | None = None  # close the listening socket after this many


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def do_GET(self) -> None:
        settings = self.server.settings
        if self.path.endswith("/models") and not settings.minimal:
            self._json({"object": "list", "data": [{"id": settings.model, "object": "model"}]})
        elif self.path == "/health":
            self._json({})
        elif self.path == "/metrics":
            self._text(self.server.metrics_text())
        else:
            self._json({"error": "not found"}, status=404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        settings = self.server.settings
        self.server.count_request()
        if not settings.openai:
            self._json({"result": "this is not the OpenAI API"})
            return
        if settings.status != 200:
            self._json({"error": {"message": "the fake server fails"}}, status=settings.status)
            return
        chat = self.path.endswith("/chat/completions")
        n = min(int(body.get("max_tokens") or settings.n_tokens), settings.n_tokens)
        self.send_response(200)
        kind = "text/plain" if settings.minimal else "text/event-stream"
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        began = time.perf_counter()
        if chat:
            self._event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for i in range(n):
            # On a schedule from the request's start, so that delays do not add up.
            delay = (settings.ttft_ms + i * settings.itl_ms) / 1000.0
            time.sleep(max(0.0, began + delay - time.perf_counter()))
            text = f" w{i}"
            reason = "length" if i == n - 1 else None
            choice: dict[str, Any] = {"index": 0, "finish_reason": reason}
            choice.update({"delta": {"content": text}} if chat else {"text": text})
            self._event({"choices": [choice]})
        if settings.usage and not settings.minimal:
            usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
            self._event({"choices": [], "usage": usage})
        if not settings.minimal:
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        self.close_connection = True

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _json(self, data: dict[str, Any], status: int = 200) -> None:
        self._send(json.dumps(data).encode(), "application/json", status)

    def _text(self, text: str) -> None:
        self._send(text.encode(), "text/plain; version=0.0.4", 200)

    def _send(self, payload: bytes, kind: str, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, settings: FakeServerSettings, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.settings = settings
        self.n_requests = 0
        self._lock = threading.Lock()

    def count_request(self) -> None:
        with self._lock:
            self.n_requests += 1
            stop = self.settings.stop_after_requests
            if stop is not None and self.n_requests >= stop:
                # Stop accepting: new connections are refused, as from a dead server.
                threading.Thread(target=self.shutdown, daemon=True).start()
                self.socket.close()

    def metrics_text(self) -> str:
        """A queue-time histogram: every request counted as queued for 1 ms."""
        n = self.n_requests
        return (
            "# TYPE vllm:request_queue_time_seconds histogram\n"
            f'vllm:request_queue_time_seconds_bucket{{le="0.001"}} {n}\n'
            f'vllm:request_queue_time_seconds_bucket{{le="+Inf"}} {n}\n'
            f"vllm:request_queue_time_seconds_sum {n * 0.001}\n"
            f"vllm:request_queue_time_seconds_count {n}\n"
        )


class FakeOpenAIServer:
    """Starts the fake server in a background thread; ``url`` is its ``/v1`` base."""

    def __init__(self, settings: FakeServerSettings | None = None, **fields: Any) -> None:
        self.settings = settings or FakeServerSettings(**fields)
        self._server = _Server(self.settings)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def n_requests(self) -> int:
        return self._server.n_requests

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m llenergymeasure.testing.fake_openai_server --port N``: serve until killed."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    settings = FakeServerSettings(itl_ms=args.itl_ms, ttft_ms=args.ttft_ms)
    server = _Server(settings, port=args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
