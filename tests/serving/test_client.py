"""The OpenAI streaming format as the load generator reads it."""

from __future__ import annotations

import pytest

from llenergymeasure.serving.client import (
    NotOpenAIError,
    RequestFailedError,
    parse_chunk,
    request_body,
)


def test_chat_and_completion_chunks_carry_their_text() -> None:
    chat = parse_chunk(
        'data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}', "chat"
    )
    assert chat is not None and chat.text == "Hi" and chat.finish_reason is None
    text = parse_chunk(
        'data: {"choices":[{"text":" there","finish_reason":"stop"}]}', "completions"
    )
    assert text is not None and text.text == " there" and text.finish_reason == "stop"


def test_the_role_chunk_is_not_a_token_and_usage_is_read() -> None:
    role = parse_chunk('data: {"choices":[{"delta":{"role":"assistant","content":""}}]}', "chat")
    assert role is not None and role.text == ""
    usage = parse_chunk(
        'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12}}', "chat"
    )
    assert usage is not None and usage.n_completion_tokens == 12 and usage.n_prompt_tokens == 9


def test_done_blank_and_comment_lines() -> None:
    done = parse_chunk("data: [DONE]", "chat")
    assert done is not None and done.done
    assert parse_chunk("", "chat") is None
    assert parse_chunk(": keep-alive", "chat") is None


def test_anything_else_is_not_openai_and_an_error_event_fails_the_request() -> None:
    with pytest.raises(NotOpenAIError):
        parse_chunk("data: hello", "chat")
    with pytest.raises(NotOpenAIError):
        parse_chunk('data: {"result": 1}', "chat")
    with pytest.raises(RequestFailedError, match="error event"):
        parse_chunk('data: {"error": {"message": "boom"}}', "chat")


def test_a_request_body_streams_with_usage_and_keeps_the_extras() -> None:
    body = request_body("chat", "m", "hello", max_tokens=8, extra={"temperature": 0.0})
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 8 and body["temperature"] == 0.0
    assert request_body("completions", "m", "hi", max_tokens=1, extra={})["prompt"] == "hi"


def test_run_sync_works_inside_a_running_event_loop() -> None:
    import asyncio

    from llenergymeasure.serving.client import run_sync

    async def answer() -> int:
        return 42

    async def notebook() -> int:  # a notebook's cell runs inside a loop
        return run_sync(answer())

    assert run_sync(answer()) == 42
    assert asyncio.run(notebook()) == 42
