"""OpenTelemetry traces: a span per MCP request with its decision, a child span per upstream
request, and `traceparent` carried to a real upstream.

Provenance: Airlock-defined (issue 16, item 3), with the SDK's in-memory exporter, Airlock under
uvicorn on loopback and the demo upstream behind a recorder of the headers it receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.config import TracingSettings, settings_from_document
from app.demo.upstream import DemoMarket, build_app
from app.errors import ConfigError
from app.tracing import build
from app.types import Receive, Scope, Send
from tests.harness import AirlockUnderTest, new_task, running_airlock, settings_for_test
from tests.net import serve

AGENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT_TRACEPARENT = f"00-{AGENT_TRACE_ID}-00f067aa0ba902b7-01"


class HeaderRecorder:
    """The upstream's ASGI app, recording each request's `traceparent` (None when absent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.traceparents: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            value = headers.get(b"traceparent")
            self.traceparents.append(None if value is None else value.decode())
        await self.app(scope, receive, send)


@pytest.fixture
async def recorder(market: DemoMarket) -> AsyncIterator[tuple[HeaderRecorder, str]]:
    recording = HeaderRecorder(build_app(market))
    async with serve(recording) as url:
        yield recording, f"{url}/mcp"


async def _airlock(tmp_path: Path, upstream: str, database_url: str, *, enabled: bool) -> Any:
    settings = settings_for_test(tmp_path, upstream, database_url, tracing={"enabled": enabled, "exporter": "none"})
    return running_airlock(settings)


def _traceparent(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"


async def test_a_call_gets_a_server_span_with_its_decision_and_a_child_span_whose_context_reaches_the_upstream(
    tmp_path: Path, recorder: tuple[HeaderRecorder, str], database_url: str
) -> None:
    recording, upstream = recorder
    exported = InMemorySpanExporter()
    async with await _airlock(tmp_path, upstream, database_url, enabled=True) as airlock:
        airlock.app.state.traces.provider.add_span_processor(SimpleSpanProcessor(exported))
        result = await _call(airlock, "em_list_tasks", traceparent=AGENT_TRACEPARENT)
    assert not result.is_error
    spans = exported.get_finished_spans()
    [call] = [s for s in spans if s.kind == SpanKind.SERVER and _attributes(s).get("airlock.tool") == "em_list_tasks"]
    assert call.name == "POST /mcp/{upstream}"
    assert dict(_attributes(call)) | {"url.path": ""} == {
        "http.request.method": "POST",
        "http.route": "/mcp/{upstream}",
        "url.path": "",
        "http.response.status_code": 200,
        "airlock.upstream": "execution-market",
        "airlock.agent": "agent-1",
        "airlock.tool": "em_list_tasks",
        "airlock.decision": "allow",
    }
    assert f"{call.context.trace_id:032x}" == AGENT_TRACE_ID, "the agent's trace is continued"
    children = [s for s in spans if s.parent is not None and s.parent.span_id == call.context.span_id]
    assert children and all(s.kind == SpanKind.CLIENT and s.name == "upstream POST" for s in children)
    assert all(_attributes(s)["airlock.upstream"] == "execution-market" for s in children)
    assert {_traceparent(s) for s in children} <= set(recording.traceparents)


async def test_a_held_calls_decision_and_execution_are_spans_linked_to_the_request_that_parked_it(
    tmp_path: Path, recorder: tuple[HeaderRecorder, str], database_url: str, market: DemoMarket
) -> None:
    recording, upstream = recorder
    task = new_task(market)
    exported = InMemorySpanExporter()
    async with await _airlock(tmp_path, upstream, database_url, enabled=True) as airlock:
        airlock.app.state.traces.provider.add_span_processor(SimpleSpanProcessor(exported))
        async with airlock.client() as client:
            held = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "dup"}))
            approval = await airlock.wait_pending()
            assert (await airlock.decide(approval["id"], "approve")).status_code == 200
            async with asyncio.timeout(15):
                assert not (await held).is_error
        await airlock.wait_status(approval["id"], "completed")
    spans = exported.get_finished_spans()
    [parking] = [
        s for s in spans if s.kind == SpanKind.SERVER and _attributes(s).get("airlock.tool") == "em_cancel_task"
    ]
    assert _attributes(parking)["airlock.approval_id"] == approval["id"]
    [decide] = [s for s in spans if s.name == "approval decide"]
    [execute] = [s for s in spans if s.name == "approval execute"]
    for step in (decide, execute):
        linked = [(link.context.trace_id, link.context.span_id) for link in step.links]
        assert linked == [(parking.context.trace_id, parking.context.span_id)], f"{step.name} links to the parking span"
        assert _attributes(step)["airlock.approval_id"] == approval["id"]
        assert step.parent is None, "each step is its own trace, not a child of whichever request ran it"
    assert _attributes(decide)["airlock.verdict"] == "approve"
    [run] = [s for s in spans if s.parent is not None and s.parent.span_id == execute.context.span_id]
    assert run.kind == SpanKind.CLIENT and _attributes(run)["airlock.tool"] == "em_cancel_task"
    assert _traceparent(run) in recording.traceparents, "the upstream ran the approved call in the execution's trace"
    assert market.calls["em_cancel_task"] == 1


async def test_with_tracing_off_nothing_is_traced_and_the_upstream_sees_no_traceparent(
    tmp_path: Path, recorder: tuple[HeaderRecorder, str], database_url: str
) -> None:
    recording, upstream = recorder
    async with await _airlock(tmp_path, upstream, database_url, enabled=False) as airlock:
        assert airlock.app.state.traces is None
        result = await _call(airlock, "em_list_tasks")
    assert not result.is_error
    assert recording.traceparents and set(recording.traceparents) == {None}


def test_tracing_is_off_by_default_and_builds_no_provider() -> None:
    assert build(TracingSettings()) is None


async def _call(airlock: AirlockUnderTest, tool: str, *, traceparent: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {await airlock.agent_token()}"}
    if traceparent:
        headers["traceparent"] = traceparent
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(airlock.mcp_url, http_client=http)) as client:
            return await client.call_tool(tool, {})


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"exporter": "jaeger"}, 'tracing exporter must be "otlp", "console" or "none"'),
        ({"enabled": "yes"}, "tracing.enabled must be true or false"),
        ({"sample": 0.1}, "[tracing] accepts only enabled, exporter and service_name"),
    ],
)
def test_bad_tracing_settings_are_one_sentence(tmp_path: Path, table: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_document(
            {"tracing": table}, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40}, require_upstreams=False
        )
    assert str(raised.value).startswith(expected)


def _attributes(span: ReadableSpan) -> Mapping[str, object]:
    """A finished span's attributes (the SDK types them optional; a recorded span always has them)."""
    assert span.attributes is not None
    return span.attributes
