"""The OpenAI-compatible streaming API, as the load generator speaks it.

A request is a POST to ``/chat/completions`` or ``/completions`` with ``stream: true``;
the answer is server-sent events, one JSON chunk per ``data:`` line, ending with
``data: [DONE]``. A chunk whose text is not empty is a streamed token (its arrival time is
kept); the chunk with ``usage`` says how many tokens the server generated. httpx is
imported inside functions only: importing llenergymeasure must stay light.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from llenergymeasure.errors import ServerError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Chunk",
    "EndpointWatch",
    "InFlight",
    "NotOpenAIError",
    "RequestFailedError",
    "check_endpoint",
    "load_clock",
    "new_client",
    "parse_chunk",
    "request_body",
    "run_sync",
    "stream_request",
]

Api = Literal["chat", "completions"]
_T = TypeVar("_T")
_PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions"}


class NotOpenAIError(Exception):
    """The server answered, but not as the OpenAI streaming API does."""


class RequestFailedError(Exception):
    """One request failed (an HTTP error status, an error event, a broken connection)."""

    def __init__(self, message: str, *, connection: bool = False) -> None:
        super().__init__(message)
        self.connection = connection


@dataclass(frozen=True)
class Chunk:
    """What one ``data:`` event carries."""

    text: str = ""
    finish_reason: str | None = None
    n_prompt_tokens: int | None = None
    n_completion_tokens: int | None = None
    done: bool = False


@dataclass
class InFlight:
    """One request while it runs: load times in seconds (the load generator's clock)."""

    index: int
    prompt_id: str
    scheduled_s: float | None
    dispatched_s: float | None = None
    sent_s: float | None = None
    first_token_s: float | None = None
    done_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    n_input_tokens: int | None = None
    n_output_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None

    @property
    def completed(self) -> bool:
        """Ended with its whole answer streamed."""
        return self.done_s is not None and self.error is None


def request_body(
    api: Api, model: str, prompt: str, *, max_tokens: int, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of one streaming request; ``extra`` adds sampling fields."""
    body: dict[str, Any] = {"model": model}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body.update(extra)
    body.update(
        {"max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}}
    )
    return body


def parse_chunk(line: str, api: Api) -> Chunk | None:
    """One line of the event stream; None for lines that carry no data (blank, comments).

    Raises NotOpenAIError for data that is not an OpenAI chunk and RequestFailedError for an
    error event.
    """
    line = line.strip()
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return Chunk(done=True)
    try:
        data = json.loads(payload)
    except ValueError as err:
        raise NotOpenAIError(f"a `data:` line is not JSON: {payload[:80]!r}") from err
    if not isinstance(data, dict):
        raise NotOpenAIError(f"a `data:` line is not a JSON object: {payload[:80]!r}")
    if "error" in data:
        raise RequestFailedError(f"the server sent an error event: {str(data['error'])[:200]}")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise NotOpenAIError(f"a chunk has no `choices` list: {payload[:80]!r}")
    usage = _mapping(data.get("usage"))
    text, reason = "", None
    if choices and isinstance(choices[0], dict):
        first = choices[0]
        if api == "chat":
            text = str(_mapping(first.get("delta")).get("content") or "")
        else:
            text = str(first.get("text") or "")
        reason = first.get("finish_reason")
    return Chunk(
        text=text,
        finish_reason=str(reason) if reason else None,
        n_prompt_tokens=_int(usage.get("prompt_tokens")),
        n_completion_tokens=_int(usage.get("completion_tokens")),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def new_client(timeout_s: float) -> httpx.AsyncClient:
    """An HTTP client for the load: no connection limit, no proxies from the environment
    (a proxy between llem and a local server would add its own latency)."""
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        trust_env=False,
    )


async def stream_request(
    client: httpx.AsyncClient,
    base_url: str,
    api: Api,
    body: Mapping[str, Any],
    record: InFlight,
    clock: Callable[[], float],
) -> None:
    """Send one streaming request and fill ``record`` as its chunks arrive.

    Raises NotOpenAIError when the answer is not an OpenAI event stream and RequestFailedError for
    any other failure of this request; the record keeps what arrived before it.
    """
    import httpx

    try:
        async with client.stream("POST", base_url + _PATHS[api], json=body) as response:
            if response.status_code != 200:
                detail = (await response.aread())[:200].decode("utf-8", "replace")
                raise RequestFailedError(f"HTTP {response.status_code}: {detail}")
            kind = response.headers.get("content-type", "")
            if "json" in kind:  # a whole answer, not server-sent events
                raise NotOpenAIError(f"a streaming request was answered with `{kind}`")
            n_events = 0
            async for line in response.aiter_lines():
                now = clock()
                chunk = parse_chunk(line, api)
                if chunk is None:
                    continue
                n_events += 1
                if chunk.done:
                    break
                _take(record, chunk, now)
    except httpx.HTTPError as err:
        raise RequestFailedError(f"{type(err).__name__}: {err}", connection=True) from err
    if n_events == 0:
        raise NotOpenAIError("the answer holds no server-sent `data:` event")
    record.done_s = clock()


def _take(record: InFlight, chunk: Chunk, now: float) -> None:
    if chunk.text:
        if record.first_token_s is None:
            record.first_token_s = now
        record.token_times_s.append(now)
        record.text_parts.append(chunk.text)
    if chunk.finish_reason is not None:
        record.finish_reason = chunk.finish_reason
    if chunk.n_completion_tokens is not None:
        record.n_output_tokens = chunk.n_completion_tokens
    if chunk.n_prompt_tokens is not None:
        record.n_input_tokens = chunk.n_prompt_tokens


async def check_endpoint(client: httpx.AsyncClient, base_url: str) -> list[str] | None:
    """The model names ``GET {base_url}/models`` lists; None when the server answers but
    lists none there (its streaming answers are checked by the first request); ServerError
    when it cannot be reached or answers with a server error."""
    import httpx

    url = base_url + "/models"
    try:
        response = await client.get(url, timeout=10.0)
    except httpx.HTTPError as err:
        raise ServerError(
            f"cannot reach the server at {base_url}: {type(err).__name__}: {err}".rstrip(": "),
            hint="check the URL and that the server is running",
        ) from err
    if response.status_code >= 500:
        raise ServerError(
            f"the server at {base_url} answered {url} with HTTP {response.status_code}"
        )
    try:
        data = response.json() if response.status_code == 200 else None
    except ValueError:
        data = None
    listed = data.get("data") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return None
    return [str(m["id"]) for m in listed if isinstance(m, dict) and "id" in m]


class EndpointWatch:
    """Whether a running server still answers (a ServerWatch): asked after a request
    failed to connect, never on the load's ticks (that would add to its load)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base_url = base_url

    async def gone(self, *, probe: bool) -> str | None:
        """Why the server is gone, or None; without ``probe`` always None."""
        if not probe:
            return None
        try:
            await check_endpoint(self._client, self._base_url)
        except ServerError as err:
            return f"the server stopped answering: {err.message}"
        return None


def run_sync(work: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from synchronous code: with ``asyncio.run``, or, where
    an event loop already runs in this thread (a notebook), on a fresh loop in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llem-load") as pool:
        return pool.submit(asyncio.run, work).result()


def load_clock(origin_s: float) -> Callable[[], float]:
    """Load time: seconds since ``origin_s`` (a ``time.perf_counter`` value)."""
    return lambda: time.perf_counter() - origin_s
