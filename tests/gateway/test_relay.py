"""Everything the policy does not touch passes through Airlock as it came, in both protocol eras.

Provenance: spec (Streamable HTTP: notifications, progress, log messages and, in the handshake era,
server-to-client requests such as elicitation ride the call's SSE stream; the client answers with a
POST), plus Airlock-defined invariants (invariant 1 of docs/architecture.md, "what was judged is what runs": the agent's
exact bytes are forwarded, and an approved call's stored `params` are re-sent byte for byte).
Driven by the official SDK client, and by raw HTTP against a recording upstream for the bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.session import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult, ErrorData, LoggingMessageNotificationParams

from app.demo.upstream import DemoMarket, build_app
from app.jsonrpc import member_text, parse_json
from app.types import Message, Receive, Scope, Send
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task, running_airlock, settings_for_test, submitted_task
from tests.net import serve, wait_for
from tests.rawmcp import ACCEPT, EventReader, RawSession, final_message, modern_envelope, modern_headers

ALLOW_RATING = {
    **DEFAULT_POLICY,
    "hide": [],
    "rules": [{"id": "rate", "tool": "em_rate_worker", "action": "allow"}, *DEFAULT_POLICY["rules"]],
}


@dataclass
class Recorded:
    method: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingUpstream:
    """ASGI middleware that records each HTTP request (method, headers, exact body) before passing it on."""

    app: Any
    requests: list[Recorded] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append(Recorded(scope["method"], headers, body))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def posts(self) -> list[bytes]:
        return [r.body for r in self.requests if r.method == "POST"]

    def calls(self) -> list[bytes]:
        """The bodies of the `tools/call` requests that reached the upstream."""
        return [body for body in self.posts() if b'"tools/call"' in body]


@dataclass
class RecordedAirlock:
    airlock: AirlockUnderTest
    upstream: RecordingUpstream


@pytest.fixture
async def recorded(tmp_path: Path, market: DemoMarket, database_url: str) -> AsyncIterator[RecordedAirlock]:
    upstream = RecordingUpstream(build_app(market))
    async with serve(upstream) as base:
        settings = settings_for_test(tmp_path, f"{base}/mcp", database_url)
        async with running_airlock(settings) as airlock:
            yield RecordedAirlock(airlock, upstream)


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


# --------------------------------------------------------------------------- through the SDK client


async def test_upstream_progress_notifications_reach_the_clients_progress_callback(
    airlock: AirlockUnderTest, mode: str
) -> None:
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with airlock.client(mode=mode) as client:
        result = await client.call_tool(
            "em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5}, progress_callback=on_progress
        )
        await wait_for(lambda: len(reports) == 3)
    assert not result.is_error
    assert reports == [(1, 3, "validating"), (2, 3, "publishing"), (3, 3, "published")]


async def test_an_upstream_log_message_reaches_the_clients_logging_callback(
    airlock: AirlockUnderTest, mode: str
) -> None:
    logs: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    # 2026-07-28 sends log messages only to a request that asked for them (`log_level`).
    async with airlock.client(mode=mode, logging_callback=on_log, log_level="info") as client:
        result = await client.call_tool("em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5})
        await wait_for(lambda: len(logs) == 1)
    assert not result.is_error
    assert logs[0].level == "info" and "Published task" in str(logs[0].data)


async def test_a_modern_client_that_did_not_ask_for_log_messages_gets_none(airlock: AirlockUnderTest) -> None:
    logs: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with airlock.client(mode="auto", logging_callback=on_log) as client:
        result = await client.call_tool("em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5})
    assert not result.is_error and logs == []


async def test_an_elicitation_round_trips_through_airlock_to_the_client_and_back(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    airlock.set_policy(ALLOW_RATING)
    task = submitted_task(market)
    asked: list[ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        asked.append(params)
        return ElicitResult(action="accept", content={"rating": 4, "comment": "tidy work"})

    async with airlock.client(mode=mode, elicitation_callback=answer) as client:
        result = await client.call_tool("em_rate_worker", {"task_id": task.id})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["action"] == "accept"
    assert len(asked) == 1 and "worker-7" in asked[0].message
    assert (task.status, task.rating, task.rating_comment) == ("completed", 4, "tidy work")
    assert market.calls == {"em_rate_worker": 1}


async def test_a_declined_elicitation_reaches_the_upstream_as_declined(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    airlock.set_policy(ALLOW_RATING)
    task = submitted_task(market)

    async def decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        return ElicitResult(action="decline")

    async with airlock.client(mode=mode, elicitation_callback=decline) as client:
        result = await client.call_tool("em_rate_worker", {"task_id": task.id})
    assert result.structured_content is not None and result.structured_content["action"] == "decline"
    assert (task.status, task.rating) == ("submitted", None)


async def test_tools_list_keeps_every_field_of_every_visible_tool_and_drops_the_hidden_ones(
    airlock: AirlockUnderTest, upstream_url: str, mode: str
) -> None:
    from mcp import Client

    async with Client(upstream_url, mode=mode) as direct:
        upstream_tools = (await direct.list_tools()).tools
    async with airlock.client(mode=mode) as client:
        relayed_tools = (await client.list_tools()).tools
    expected = [tool.model_dump(mode="json", by_alias=True) for tool in upstream_tools if tool.name != "em_rate_worker"]
    if mode == "legacy":
        # A 2025-11-25 session advertises tasks: tools a rule may hold say a task is optional (docs/tasks.md).
        for tool in expected:
            if tool["name"] in ("em_publish_task", "em_cancel_task"):
                tool["execution"] = {**(tool.get("execution") or {}), "taskSupport": "optional"}
    assert [tool.model_dump(mode="json", by_alias=True) for tool in relayed_tools] == expected
    assert all(tool["annotations"] and tool["inputSchema"]["properties"] for tool in expected)


# --------------------------------------------------------------------------- raw wire: fields and bytes


def modern_meta_text() -> str:
    return json.dumps(modern_envelope())


async def test_tools_list_relays_unknown_result_fields_and_meta_unchanged(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """The filter rewrites only `tools`; every other member of the answer is relayed as it came."""
    token = await airlock.agent_token()
    body = {"jsonrpc": "2.0", "id": "list-1", "method": "tools/list", "params": {"_meta": modern_envelope()}}
    async with httpx.AsyncClient(timeout=10) as http:
        relayed = await http.post(airlock.mcp_url, json=body, headers=modern_headers(token, "tools/list"))
        direct = await http.post(
            airlock.runtime.settings.upstreams[0].url, json=body, headers=modern_headers(token, "tools/list")
        )
    relayed_message, direct_message = relayed.json(), direct.json()
    assert relayed.status_code == 200 and relayed_message["id"] == "list-1"
    hidden = [t for t in direct_message["result"]["tools"] if t["name"] == "em_rate_worker"]
    assert hidden and hidden[0] not in relayed_message["result"]["tools"]
    direct_message["result"]["tools"].remove(hidden[0])
    assert relayed_message == direct_message


SPACED_CALL = (
    '{ "params" : {\n'
    '    "_meta" : {"io.modelcontextprotocol/protocolVersion":"2026-07-28", "progressToken" : "p-\\u00e9",'
    ' "io.modelcontextprotocol/clientCapabilities":{}, "com.example/trace" : {"id" : [1, 2.50, true]}},\n'
    '    "x-unknown-field" : {"kept": "as is"},\n'
    '    "name" : "em_get_task",\n'
    '    "arguments" : { "task_id" : "%s", "note" : "caf\\u00e9 \\ud83d\\ude00 \\/ \\"q\\"" }\n'
    '  } , "method":"tools/call",\t"jsonrpc" : "2.0", "id" : 42 }\n'
)


async def test_an_allowed_call_reaches_the_upstream_byte_for_byte_as_sent_in_the_modern_era(
    recorded: RecordedAirlock, market: DemoMarket
) -> None:
    airlock, upstream = recorded.airlock, recorded.upstream
    task = new_task(market)
    raw = (SPACED_CALL % task.id).encode()
    token = await airlock.agent_token()
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            airlock.mcp_url, content=raw, headers=modern_headers(token, "tools/call", "em_get_task")
        )
    assert response.status_code == 200, response.text
    assert upstream.calls() == [raw]
    assert market.log == [("em_get_task", {"task_id": task.id, "note": 'café 😀 / "q"'})]


async def test_an_allowed_call_reaches_the_upstream_byte_for_byte_as_sent_in_the_handshake_era(
    recorded: RecordedAirlock, market: DemoMarket
) -> None:
    airlock, upstream = recorded.airlock, recorded.upstream
    task = new_task(market)
    raw = (
        f'{{"jsonrpc" :"2.0","method": "tools/call" , "params":{{"arguments":{{"task_id":"{task.id}"}},'
        '"_meta":{"progressToken":7,"com.example/x":null},"name":"em_get_task","extra":[]}, "id":"a\\u0062c"}  '
    ).encode()
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        response = await http.post(airlock.mcp_url, content=raw, headers=session.headers())
    assert response.status_code == 200, response.text
    assert upstream.calls() == [raw]
    assert '"id":"abc"' in response.text.replace(" ", "")


@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_an_approved_call_runs_with_the_exact_original_params_and_only_a_new_id(
    recorded: RecordedAirlock, market: DemoMarket, era: str
) -> None:
    airlock, upstream = recorded.airlock, recorded.upstream
    task = new_task(market)
    meta = modern_meta_text() if era == "modern" else '{"com.example/x" : "\\u00fc"}'
    params = (
        f'{{ "arguments" : {{"reason":"dup\\u00e9  ","task_id" : "{task.id}"}}, "x-extra": [1,2.0],'
        f' "_meta" : {meta} , "name" :"em_cancel_task" }}'
    )
    raw = (f'{{"id":9,"jsonrpc":"2.0","params":{params},"method":"tools/call"}}').encode()
    async with httpx.AsyncClient(timeout=10) as http:
        if era == "modern":
            headers = modern_headers(await airlock.agent_token(), "tools/call", "em_cancel_task")
        else:
            session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
            await session.initialize()
            headers = session.headers()
        async with http.stream("POST", airlock.mcp_url, content=raw, headers=headers) as held:
            assert held.status_code == 200
            await wait_for(lambda: _has_pending(airlock), timeout=10)
            [approval] = await airlock.approvals("pending")
            assert upstream.calls() == [], "nothing runs before a human says yes"
            assert (await airlock.decide(approval["id"], "approve")).status_code == 200
            answer = await final_message(held)
    assert answer["id"] == 9 and not answer["result"].get("isError"), answer
    [executed] = upstream.calls()
    assert member_text(executed, "params") == params
    message = parse_json(executed)
    assert message["id"] == f"airlock-{approval['id']}"
    assert {k: v for k, v in message.items() if k != "id"} == {k: v for k, v in parse_json(raw).items() if k != "id"}
    assert market.log == [("em_cancel_task", {"reason": "dupé  ", "task_id": task.id})]


async def _has_pending(airlock: AirlockUnderTest) -> bool:
    return bool(await airlock.approvals("pending"))


class ScriptedUpstream:
    """An upstream whose answer to each POST the test writes as it goes: SSE frames from a queue
    (`None` ends the stream), or a fixed JSON body."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.json_body: bytes | None = None
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = [(await receive()).get("body", b"")]
        body = b"".join(chunks)
        if self.json_body is None and b'"tools/list"' in body:
            # Airlock lists the tools itself before judging a first call (issue 10: it checks the
            # arguments against each tool's inputSchema); this upstream publishes none.
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b'{"jsonrpc":"2.0","id":0,"result":{"tools":[]}}'})
            return
        self.bodies.append(body)
        if self.json_body is not None:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": self.json_body})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        while (frame := await self.frames.get()) is not None:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def scripted(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[AirlockUnderTest, ScriptedUpstream]]:
    upstream = ScriptedUpstream()
    async with serve(upstream) as base:
        async with running_airlock(settings_for_test(tmp_path, f"{base}/mcp", database_url)) as airlock:
            yield airlock, upstream


def get_task_call(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "em_get_task",
            "arguments": {"task_id": "t"},
            "_meta": {**modern_envelope(), "progressToken": "p"},
        },
    }


async def test_sse_events_are_relayed_one_by_one_as_the_upstream_sends_them(
    scripted: tuple[AirlockUnderTest, ScriptedUpstream],
) -> None:
    """The agent reads the upstream's first event while the upstream has not even written its answer."""
    airlock, upstream = scripted
    progress = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}'
    final = '{"jsonrpc":"2.0","id":1,"result":{"content":[],"x-vendor":{"a" : 1},"resultType":"complete"},"z":0}'
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            airlock.mcp_url,
            json=get_task_call(),
            headers=modern_headers(await airlock.agent_token(), "tools/call", "em_get_task"),
        ) as response,
    ):
        reader = EventReader(response)
        async with asyncio.timeout(5):
            await upstream.frames.put(b": upstream keep-alive\r\n\r\n")
            assert (await reader.next_event(skip_comments=False)).comment == "upstream keep-alive"
            await upstream.frames.put(f"id: e1\nevent: message\ndata: {progress}\n\n".encode())
            first = await reader.next_event()
            assert (first.data, first.id) == (progress, "u.e1")
            await upstream.frames.put(f"data: {final}\n\n".encode())
            await upstream.frames.put(None)
            last = await reader.next_event()
    assert last.data == final, "the answer is relayed as the upstream wrote it, unknown fields and all"


@pytest.mark.parametrize("padding", [0, 3_000_000], ids=["small", "3 MB"])
async def test_a_json_answer_is_relayed_byte_for_byte(
    scripted: tuple[AirlockUnderTest, ScriptedUpstream], padding: int
) -> None:
    """Regression (issue 10, class 3): a large JSON answer was cut off where the first read stopped."""
    airlock, upstream = scripted
    upstream.json_body = (
        b'{ "jsonrpc":"2.0", "id":1, "result":{"content":[{"type":"text","text":"caf\\u00e9'
        + "caf\u00e9 \u2615 ".encode() * (padding // 10)
        + b'"}],'
        b' "structuredContent":{"n":1.50}, "_meta":{"com.example/k":[]}, "x-new":true}}'
    )
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            airlock.mcp_url,
            json=get_task_call(),
            headers=modern_headers(await airlock.agent_token(), "tools/call", "em_get_task"),
        )
    assert response.status_code == 200
    assert response.content == upstream.json_body


@pytest.mark.parametrize("frame", [b"data: not json\n\n", b"data: [1, 2]\n\n", b'data: {"jsonrpc":"2.0"}\n\n'])
async def test_an_upstream_that_answers_initialize_with_garbage_gets_the_agent_an_error_not_a_crash(
    scripted: tuple[AirlockUnderTest, ScriptedUpstream], frame: bytes
) -> None:
    airlock, upstream = scripted
    await upstream.frames.put(frame)
    await upstream.frames.put(None)
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            airlock.mcp_url,
            json=body,
            headers={
                "authorization": f"Bearer {await airlock.agent_token()}",
                "accept": ACCEPT,
                "content-type": "application/json",
            },
        )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 0,
        "error": {"code": -32603, "message": "the upstream did not answer initialize"},
    }
    assert "mcp-session-id" not in response.headers


async def test_an_mcp_param_header_that_disagrees_with_the_judged_argument_never_reaches_the_upstream(
    scripted: tuple[AirlockUnderTest, ScriptedUpstream],
) -> None:
    """2026-07-28 `x-mcp-header`: intermediaries route on `Mcp-Param-*`, so it must say what the policy judged."""
    airlock, upstream = scripted
    schema = {"type": "object", "properties": {"task_id": {"type": "string", "x-mcp-header": "Task"}}}
    upstream.json_body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"tools": [{"name": "em_get_task", "inputSchema": schema}], "resultType": "complete"},
        }
    ).encode()
    token = await airlock.agent_token()
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_envelope()}}
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "em_get_task", "arguments": {"task_id": "t-1"}, "_meta": modern_envelope()},
    }
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(airlock.mcp_url, json=listing, headers=modern_headers(token, "tools/list"))
        upstream.bodies.clear()
        refused = [
            await http.post(
                airlock.mcp_url,
                json=call,
                headers=[*modern_headers(token, "tools/call", "em_get_task").items(), *extra],
            )
            for extra in ([("mcp-param-task", "t-2")], [], [("mcp-param-task", "t-2"), ("mcp-param-task", "t-1")])
        ]
        assert upstream.bodies == []
        accepted = await http.post(
            airlock.mcp_url,
            json=call,
            headers={**modern_headers(token, "tools/call", "em_get_task"), "mcp-param-task": "t-1"},
        )
    assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [(400, -32020)] * 3
    assert "more than once" in refused[2].json()["error"]["message"]
    assert accepted.status_code == 200 and len(upstream.bodies) == 1


async def test_a_resumed_upstream_stream_holding_only_the_answer_stays_an_event_stream(
    scripted: tuple[AirlockUnderTest, ScriptedUpstream],
) -> None:
    """Regression: a POST's lone answer may go back as JSON, but a GET (here a resumption of the
    upstream's own stream, `Last-Event-ID: u.<id>`) is always relayed as events: SDK clients read
    resumption GETs as event streams only."""
    airlock, upstream = scripted
    upstream.json_body = (
        b'{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{},'
        b'"serverInfo":{"name":"scripted","version":"0"}}}'
    )
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        upstream.json_body = None
        answer = '{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}'
        await upstream.frames.put(f"id: e2\ndata: {answer}\n\n".encode())
        await upstream.frames.put(None)
        async with session.stream("GET", None, **{"last-event-id": "u.e1"}) as resumed:
            assert resumed.response.headers["content-type"].startswith("text/event-stream")
            async with asyncio.timeout(5):
                event = await resumed.next_event()
    assert (event.data, event.id) == (answer, "u.e2")
