"""Answers of any size arrive whole (issue 10, class 3).

Provenance: regression (aiohttp's `StreamReader.read(n)` returns what is buffered, not the body:
answers of a few hundred KB were cut off at random) plus Airlock-defined behaviour (an answer
over `max_response_bytes` gets a clear error; an approved call whose result is too large is
`completed` and says it ran, never `outcome_unknown`). Raw HTTP in both eras against an upstream
that writes its answers in 16 KB chunks, so a partial read shows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.sse import SSEParser
from tests.fakes.big_answers import BigAnswerUpstream, big_text
from tests.harness import AirlockUnderTest, running_airlock, settings_for_test
from tests.net import serve
from tests.rawmcp import RawSession, final_message, modern_envelope, modern_headers

POLICY = {
    "version": "1",
    "default": "deny",
    "rules": [
        {"tool": "big_text", "action": "allow"},
        {"tool": "big_text_reviewed", "action": "approve", "reason": "big"},
    ],
}


@asynccontextmanager
async def big_airlock(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[AirlockUnderTest, BigAnswerUpstream]]:
    upstream = BigAnswerUpstream()
    async with serve(upstream) as base:
        settings = settings_for_test(tmp_path, f"{base}/mcp", database_url, policy=POLICY, **overrides)
        async with running_airlock(settings) as airlock:
            yield airlock, upstream


class Agent:
    """A raw client of one era: `headers` for a `tools/call`, and the call's body."""

    def __init__(self, http: httpx.AsyncClient, airlock: AirlockUnderTest, era: str) -> None:
        self.http, self.airlock, self.era = http, airlock, era
        self.session: RawSession | None = None

    async def start(self) -> Agent:
        if self.era == "handshake":
            self.session = RawSession(self.http, self.airlock.mcp_url, await self.airlock.agent_token())
            await self.session.initialize()
        return self

    async def headers(self, method: str = "tools/call", name: str | None = None) -> dict[str, str]:
        if self.session is not None:
            return self.session.headers()
        return modern_headers(await self.airlock.agent_token(), method, name)

    def call(self, tool: str, size: int, mode: str, request_id: int = 1) -> dict[str, Any]:
        params: dict[str, Any] = {"name": tool, "arguments": {"size": size, "mode": mode}}
        if self.era == "modern":
            params["_meta"] = modern_envelope()
        return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def answer_bytes(response: httpx.Response) -> bytes:
    """The JSON-RPC answer's exact bytes: the body, or (when the relay committed to a stream because
    a large event took longer than its first-event window to arrive) the data of the stream's event."""
    if not response.headers["content-type"].startswith("text/event-stream"):
        return response.content
    events = [event for event in SSEParser(max_event_bytes=1 << 26).feed(response.content) if event.data]
    assert len(events) == 1, events
    return events[0].data.encode("utf-8")


def text_of(result: dict[str, Any]) -> str:
    return "".join(item["text"] for item in result["content"] if item.get("type") == "text")


@pytest.mark.parametrize("size", [100_000, 3_000_000])
@pytest.mark.parametrize("mode", ["json", "sse"])
@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_an_allowed_calls_large_answer_is_relayed_whole_and_byte_for_byte(
    tmp_path: Path, database_url: str, era: str, mode: str, size: int
) -> None:
    async with big_airlock(tmp_path, database_url) as (airlock, upstream), httpx.AsyncClient(timeout=30) as http:
        agent = await Agent(http, airlock, era).start()
        for request_id in range(1, 4):  # more than once: a truncation was intermittent
            response = await http.post(
                airlock.mcp_url,
                json=agent.call("big_text", size, mode, request_id),
                headers=await agent.headers("tools/call", "big_text"),
            )
            assert response.status_code == 200
            assert answer_bytes(response) == upstream.answers[-1], f"answer {request_id} was not relayed whole"
    assert upstream.calls["big_text"] == 3


@pytest.mark.parametrize("mode", ["json", "sse"])
@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_an_approved_calls_large_result_is_stored_and_delivered_whole(
    tmp_path: Path, database_url: str, era: str, mode: str
) -> None:
    size = 2_500_000
    async with big_airlock(tmp_path, database_url) as (airlock, upstream):
        async with httpx.AsyncClient(timeout=30) as http:
            agent = await Agent(http, airlock, era).start()
            async with http.stream(
                "POST",
                airlock.mcp_url,
                json=agent.call("big_text_reviewed", size, mode),
                headers=await agent.headers("tools/call", "big_text_reviewed"),
            ) as held:
                approval = await airlock.wait_pending()
                assert (await airlock.decide(approval["id"], "approve")).status_code == 200
                answer = await final_message(held)
        detail = await airlock.approval(approval["id"])
    assert detail["status"] == "completed", detail["outcome"]
    sent = json.loads(upstream.answers[0])["result"]
    assert text_of(answer["result"]) == big_text(size)
    assert {k: v for k, v in answer["result"].items() if k != "_meta"} == sent
    assert upstream.calls["big_text_reviewed"] == 1


@pytest.mark.parametrize("mode", ["json", "sse"])
@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_an_allowed_answer_over_the_limit_gets_a_clear_error_saying_it_ran(
    tmp_path: Path, database_url: str, era: str, mode: str
) -> None:
    async with big_airlock(tmp_path, database_url, max_response_bytes=50_000) as (airlock, upstream):
        async with httpx.AsyncClient(timeout=30) as http:
            agent = await Agent(http, airlock, era).start()
            response = await http.post(
                airlock.mcp_url,
                json=agent.call("big_text", 200_000, mode),
                headers=await agent.headers("tools/call", "big_text"),
            )
            small = await http.post(
                airlock.mcp_url,
                json=agent.call("big_text", 1_000, mode, 2),
                headers=await agent.headers("tools/call", "big_text"),
            )
    result = json.loads(answer_bytes(response))["result"]
    assert result["isError"] is True
    text = text_of(result)
    assert "ran" in text and "max_response_bytes = 50000 bytes" in text and "not relayed" in text
    assert answer_bytes(small) == upstream.answers[-1], "an answer under the limit still passes"


@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_a_stream_already_relaying_ends_with_the_too_large_answer_when_the_result_is_over_the_limit(
    tmp_path: Path, database_url: str, era: str
) -> None:
    async with big_airlock(tmp_path, database_url, max_response_bytes=50_000) as (airlock, upstream):
        async with httpx.AsyncClient(timeout=30) as http:
            agent = await Agent(http, airlock, era).start()
            async with http.stream(
                "POST",
                airlock.mcp_url,
                json=agent.call("big_text", 200_000, "sse-after-log"),
                headers=await agent.headers("tools/call", "big_text"),
            ) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                answer = await final_message(response)
    assert answer["id"] == 1 and answer["result"]["isError"] is True
    assert "ran" in text_of(answer["result"]) and "not relayed" in text_of(answer["result"])
    assert ("resultType" in answer["result"]) == (era == "modern")
    assert upstream.calls["big_text"] == 1


@pytest.mark.parametrize("mode", ["json", "sse"])
@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_an_approved_call_whose_result_is_over_the_limit_is_completed_and_says_it_ran(
    tmp_path: Path, database_url: str, era: str, mode: str
) -> None:
    async with big_airlock(tmp_path, database_url, max_response_bytes=50_000) as (airlock, upstream):
        async with httpx.AsyncClient(timeout=30) as http:
            agent = await Agent(http, airlock, era).start()
            async with http.stream(
                "POST",
                airlock.mcp_url,
                json=agent.call("big_text_reviewed", 200_000, mode),
                headers=await agent.headers("tools/call", "big_text_reviewed"),
            ) as held:
                approval = await airlock.wait_pending()
                await airlock.decide(approval["id"], "approve")
                answer = await final_message(held)
        detail = await airlock.approval(approval["id"])
    assert detail["status"] == "completed", "it ran: never outcome_unknown"
    assert "exceeds max_response_bytes (50000 bytes)" in detail["outcome"]
    assert answer["result"]["isError"] is True
    assert "ran" in text_of(answer["result"]) and "not relayed" in text_of(answer["result"])
    assert upstream.calls["big_text_reviewed"] == 1


async def test_a_json_lines_answer_is_relayed_chunk_by_chunk_to_its_end(tmp_path: Path, database_url: str) -> None:
    """Regression: a `subscriptions/listen` answer in JSON lines was closed after its first chunk."""
    lines = [
        json.dumps({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "n": n}).encode() + b"\n"
        for n in range(3)
    ]
    async with big_airlock(tmp_path, database_url) as (airlock, upstream):
        body = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "subscriptions/listen",
            "params": {"_meta": modern_envelope(), "notifications": {"toolsListChanged": True}},
        }
        async with httpx.AsyncClient(timeout=30) as http:
            headers = modern_headers(await airlock.agent_token(), "subscriptions/listen")
            async with http.stream("POST", airlock.mcp_url, json=body, headers=headers) as response:
                assert response.headers["content-type"] == "application/jsonl"
                chunks = response.aiter_raw()
                received = b""
                async with asyncio.timeout(10):
                    for line in lines:
                        await upstream.lines.put(line)
                        while not received.endswith(line):  # each line arrives before the next is written
                            received += await chunks.__anext__()
                    await upstream.lines.put(None)
                    async for rest in chunks:
                        received += rest
    assert received == b"".join(lines)


async def test_a_large_initialize_answer_arrives_whole(tmp_path: Path, database_url: str) -> None:
    async with big_airlock(tmp_path, database_url) as (airlock, upstream):
        upstream.instructions = big_text(1_500_000)
        async with httpx.AsyncClient(timeout=30) as http:
            session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
            answer = await session.initialize()
    assert answer["result"]["instructions"] == upstream.instructions


def test_max_response_bytes_is_a_validated_setting(tmp_path: Path) -> None:
    from app.config import settings_from_document
    from app.errors import ConfigError

    document = {"upstreams": [{"name": "u", "url": "http://127.0.0.1:1/mcp", "policy": "p.json"}]}
    assert settings_from_document(document, base_dir=tmp_path, env={}).max_response_bytes == 64 * 1024 * 1024
    assert (
        settings_from_document({**document, "max_response_bytes": 1000}, base_dir=tmp_path, env={}).max_response_bytes
        == 1000
    )
    with pytest.raises(ConfigError, match="max_response_bytes"):
        settings_from_document({**document, "max_response_bytes": 0}, base_dir=tmp_path, env={})


def test_the_sse_parser_reassembles_a_multi_megabyte_event_from_small_chunks() -> None:
    from app.sse import SSEParser, encode

    data = json.dumps({"text": big_text(3_000_000)}, ensure_ascii=False)
    frame = encode(data, event_id="e1")
    parser = SSEParser(max_event_bytes=8 * 1024 * 1024)
    events = [event for start in range(0, len(frame), 4096) for event in parser.feed(frame[start : start + 4096])]
    assert [(event.data, event.id) for event in events] == [(data, "e1")]


def test_an_sse_event_over_the_limit_is_refused_whether_or_not_its_line_is_complete() -> None:
    from app.sse import EventTooLarge, SSEParser

    for frame in (b"data: " + b"x" * 2000, b"data: " + b"x" * 2000 + b"\n"):
        with pytest.raises(EventTooLarge):
            list(SSEParser(max_event_bytes=1000).feed(frame))
