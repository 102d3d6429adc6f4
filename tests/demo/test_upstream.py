"""The demo upstream, driven over loopback by the official SDK client in both protocol eras.

Provenance: Airlock-defined (the demo's tools and counters); the era-specific wire behaviour
asserted at the end is the SDK's (`mcp` 2.3), pinned here because the gateway relies on it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    ElicitRequestFormParams,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    LoggingMessageNotificationParams,
    TextContent,
)

from app.demo.upstream import LOOPBACK_HOSTS, MCP_PATH, STATE_PATH, DemoMarket, Task, build_app, main
from tests.net import free_port, serve, wait_for

TIMEOUT = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])
PUBLISH_ARGS: dict[str, Any] = {"title": "Photograph a storefront", "description": "One photo", "bounty_usd": 2.5}
JSON_AND_SSE = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


@asynccontextmanager
async def connect(market: DemoMarket, mode: str, **client_options: Any) -> AsyncIterator[Client]:
    """Serve `build_app(market)` on loopback and connect an SDK client; everything inside is bounded."""
    async with asyncio.timeout(TIMEOUT), serve(build_app(market)) as base:
        async with Client(f"{base}{MCP_PATH}", mode=mode, **client_options) as client:
            yield client


def submitted_task(market: DemoMarket) -> Task:
    """Put a task awaiting a rating on the market."""
    task = Task(
        id="task-to-rate",
        title="Count the benches",
        description="In the park",
        bounty_usd=1.0,
        deadline_hours=2,
        status="submitted",
        worker_id="worker-7",
        submission="12 benches",
    )
    market.tasks[task.id] = task
    return task


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@MODES
async def test_auto_mode_speaks_2026_07_28_and_legacy_mode_the_handshake_era(mode: str) -> None:
    async with connect(DemoMarket(), mode) as client:
        expected = "2026-07-28" if mode == "auto" else "2025-11-25"
        assert client.protocol_version == expected
        assert client.server_info is not None and client.server_info.name == "execution-market-demo"


@MODES
async def test_tools_are_listed_with_truthful_annotations(mode: str) -> None:
    async with connect(DemoMarket(), mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {
        "em_publish_task",
        "em_list_tasks",
        "em_get_task",
        "em_accept_task",
        "em_submit_work",
        "em_rate_worker",
        "em_cancel_task",
    }
    cancel = tools["em_cancel_task"].annotations
    assert cancel is not None
    assert (cancel.read_only_hint, cancel.destructive_hint) == (False, True)
    assert (tools["em_cancel_task"].description or "").startswith(
        "Cancel a task you published (only if still in 'published' or 'accepted' status)"
    )
    for name in ("em_get_task", "em_list_tasks"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint is True
    for name in ("em_publish_task", "em_accept_task", "em_submit_work", "em_rate_worker"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert (annotations.read_only_hint, annotations.destructive_hint) == (False, False)
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.title and tool.description


@MODES
async def test_publish_get_cancel_runs_each_tool_once_and_logs_it_in_order(mode: str) -> None:
    market = DemoMarket()
    async with connect(market, mode) as client:
        published = await client.call_tool("em_publish_task", PUBLISH_ARGS)
        assert not published.is_error and published.structured_content is not None
        task_id = published.structured_content["id"]
        assert published.structured_content["status"] == "published"

        fetched = await client.call_tool("em_get_task", {"task_id": task_id})
        assert fetched.structured_content is not None and fetched.structured_content["title"] == PUBLISH_ARGS["title"]

        cancelled = await client.call_tool("em_cancel_task", {"task_id": task_id, "reason": "not needed"})
        assert not cancelled.is_error and cancelled.structured_content is not None
        assert cancelled.structured_content["status"] == "cancelled"

    assert market.calls == {"em_publish_task": 1, "em_get_task": 1, "em_cancel_task": 1}
    assert market.log == [
        ("em_publish_task", PUBLISH_ARGS),
        ("em_get_task", {"task_id": task_id}),
        ("em_cancel_task", {"task_id": task_id, "reason": "not needed"}),
    ]
    assert market.tasks[task_id].status == "cancelled"


@MODES
async def test_cancelling_a_task_twice_is_a_tool_error_the_second_time(mode: str) -> None:
    market = DemoMarket()
    async with connect(market, mode) as client:
        task_id = next(iter(market.tasks))
        first = await client.call_tool("em_cancel_task", {"task_id": task_id, "reason": "first"})
        second = await client.call_tool("em_cancel_task", {"task_id": task_id, "reason": "second"})

    assert not first.is_error
    assert "only published or accepted tasks can be cancelled" in error_text(second)
    assert market.calls["em_cancel_task"] == 2
    assert market.tasks[task_id].cancel_reason == "first"


@MODES
async def test_an_accepted_task_can_be_cancelled_but_a_submitted_one_cannot(mode: str) -> None:
    market = DemoMarket(examples=False)
    async with connect(market, mode) as client:
        ids = []
        for _ in range(2):
            published = await client.call_tool("em_publish_task", PUBLISH_ARGS)
            assert published.structured_content is not None
            ids.append(published.structured_content["id"])
            await client.call_tool("em_accept_task", {"task_id": ids[-1]})
        await client.call_tool("em_submit_work", {"task_id": ids[1], "submission": "done"})

        accepted = await client.call_tool("em_cancel_task", {"task_id": ids[0], "reason": "changed plans"})
        submitted = await client.call_tool("em_cancel_task", {"task_id": ids[1], "reason": "changed plans"})

    assert not accepted.is_error
    assert "is submitted" in error_text(submitted)
    assert [market.tasks[task_id].status for task_id in ids] == ["cancelled", "submitted"]


@MODES
async def test_an_unknown_task_id_is_a_tool_error_and_the_call_still_counts(mode: str) -> None:
    market = DemoMarket()
    async with connect(market, mode) as client:
        result = await client.call_tool("em_get_task", {"task_id": "no-such-task"})

    assert "not found" in error_text(result)
    assert market.log == [("em_get_task", {"task_id": "no-such-task"})]


@MODES
async def test_arguments_that_fail_the_input_schema_never_run_the_tool(mode: str) -> None:
    market = DemoMarket()
    async with connect(market, mode) as client:
        result = await client.call_tool("em_publish_task", {**PUBLISH_ARGS, "bounty_usd": -1})

    assert result.is_error
    assert market.calls == {}


@MODES
async def test_the_seeded_examples_are_listed_and_filtered_by_status(mode: str) -> None:
    market = DemoMarket()
    async with connect(market, mode) as client:
        everything = await client.call_tool("em_list_tasks", {})
        accepted = await client.call_tool("em_list_tasks", {"status": "accepted"})

    assert everything.structured_content is not None and everything.structured_content["count"] == 2
    assert accepted.structured_content == {"tasks": [], "count": 0}


@MODES
async def test_publishing_reports_progress_and_sends_one_log_message(mode: str) -> None:
    reports: list[tuple[float, float | None, str | None]] = []
    logs: list[LoggingMessageNotificationParams] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    # log_level opts in to log messages in 2026-07-28; the handshake era sends them regardless.
    async with connect(DemoMarket(), mode, logging_callback=on_log, log_level="info") as client:
        result = await client.call_tool("em_publish_task", PUBLISH_ARGS, progress_callback=on_progress)
        await wait_for(lambda: len(reports) == 3 and len(logs) == 1)

    assert not result.is_error
    assert [message for _, _, message in reports] == ["validating", "publishing", "published"]
    assert [progress for progress, _, _ in reports] == [1, 2, 3]
    assert logs[0].level == "info" and "Published task" in str(logs[0].data)


@MODES
async def test_rating_a_worker_round_trips_an_elicitation_through_the_client(mode: str) -> None:
    market = DemoMarket(examples=False)
    task = submitted_task(market)
    asked: list[ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        asked.append(params)
        return ElicitResult(action="accept", content={"rating": 4, "comment": "tidy work"})

    async with connect(market, mode, elicitation_callback=answer) as client:
        result = await client.call_tool("em_rate_worker", {"task_id": task.id})

    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["action"] == "accept"
    assert len(asked) == 1 and isinstance(asked[0], ElicitRequestFormParams)
    assert "worker-7" in asked[0].message
    schema = asked[0].requested_schema
    rating = schema["properties"]["rating"]
    assert (rating["type"], rating["minimum"], rating["maximum"]) == ("integer", 1, 5)
    assert schema["required"] == ["rating"]
    assert (task.status, task.rating, task.rating_comment) == ("completed", 4, "tidy work")
    # In 2026-07-28 the call is two tools/call requests (input_required, then the retry),
    # but the tool body runs only on the second.
    assert market.calls == {"em_rate_worker": 1}


@MODES
async def test_declining_the_rating_records_nothing(mode: str) -> None:
    market = DemoMarket(examples=False)
    task = submitted_task(market)

    async def decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        return ElicitResult(action="decline")

    async with connect(market, mode, elicitation_callback=decline) as client:
        result = await client.call_tool("em_rate_worker", {"task_id": task.id})

    assert result.structured_content is not None and result.structured_content["action"] == "decline"
    assert (task.status, task.rating) == ("submitted", None)


@MODES
async def test_rating_from_a_client_without_elicitation_is_a_protocol_error_before_the_tool_runs(mode: str) -> None:
    market = DemoMarket(examples=False)
    task = submitted_task(market)
    async with connect(market, mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("em_rate_worker", {"task_id": task.id})

    assert refused.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert market.calls == {}


@MODES
async def test_rating_a_task_that_awaits_no_rating_asks_nothing_and_is_a_tool_error(mode: str) -> None:
    market = DemoMarket()
    asked: list[ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        asked.append(params)
        return ElicitResult(action="accept", content={"rating": 5})

    async with connect(market, mode, elicitation_callback=answer) as client:
        result = await client.call_tool("em_rate_worker", {"task_id": next(iter(market.tasks))})

    assert "is published, not submitted" in error_text(result)
    assert asked == []
    assert market.calls == {"em_rate_worker": 1}


async def test_a_slow_upstream_counts_the_call_before_it_answers() -> None:
    market = DemoMarket(delay=0.5)
    async with connect(market, "auto") as client:
        call = asyncio.create_task(client.call_tool("em_list_tasks", {}))
        await wait_for(lambda: market.calls["em_list_tasks"] == 1)
        assert not call.done()
        result = await call

    assert not result.is_error


async def test_the_state_endpoint_reports_calls_log_and_tasks() -> None:
    market = DemoMarket()
    async with asyncio.timeout(TIMEOUT), serve(build_app(market)) as base:
        async with Client(f"{base}{MCP_PATH}", mode="auto") as client:
            published = await client.call_tool("em_publish_task", PUBLISH_ARGS)
            await client.call_tool("em_list_tasks", {})
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{base}{STATE_PATH}")

    assert response.status_code == 200
    state = response.json()
    assert state["calls"] == {"em_publish_task": 1, "em_list_tasks": 1}
    assert state["log"] == [["em_publish_task", PUBLISH_ARGS], ["em_list_tasks", {}]]
    assert published.structured_content is not None
    assert published.structured_content["id"] in {task["id"] for task in state["tasks"]}
    assert len(state["tasks"]) == 3


async def test_a_foreign_host_header_is_refused_unless_it_was_allowed() -> None:
    app = build_app(DemoMarket(), allowed_hosts=[*LOOPBACK_HOSTS, "upstream:*"])
    async with asyncio.timeout(TIMEOUT), serve(app) as base, httpx.AsyncClient() as http:
        url = f"{base}{MCP_PATH}"
        foreign = await http.post(url, json=INITIALIZE, headers={**JSON_AND_SSE, "host": "evil.test:80"})
        allowed = await http.post(url, json=INITIALIZE, headers={**JSON_AND_SSE, "host": "upstream:9100"})

    assert foreign.status_code == 421
    assert allowed.status_code == 200


async def test_handshake_era_answers_every_request_as_sse_with_a_session_id_and_no_event_ids() -> None:
    """SDK behaviour the gateway relays: no event store, so no priming events and no `id:` lines."""
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "em_list_tasks", "arguments": {}}}
    async with asyncio.timeout(TIMEOUT), serve(build_app(DemoMarket())) as base, httpx.AsyncClient() as http:
        opened = await http.post(f"{base}{MCP_PATH}", json=INITIALIZE, headers=JSON_AND_SSE)
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        answered = await http.post(f"{base}{MCP_PATH}", json=call, headers={**JSON_AND_SSE, **session})

    for response in (opened, answered):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["mcp-session-id"] == session["mcp-session-id"]
        lines = response.text.splitlines()
        assert lines[0] == "event: message" and lines[1].startswith("data: {")
        assert not any(line.startswith("id:") for line in lines)


async def test_2026_era_answers_a_silent_call_as_json_and_a_progressing_call_as_sse() -> None:
    """SDK behaviour the gateway relays: JSON unless the handler emitted within 15 s; never a session id."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {**JSON_AND_SSE, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call"}

    def call(name: str, arguments: dict[str, Any], **extra_meta: Any) -> dict[str, Any]:
        params = {"name": name, "arguments": arguments, "_meta": {**meta, **extra_meta}}
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}

    async with asyncio.timeout(TIMEOUT), serve(build_app(DemoMarket())) as base, httpx.AsyncClient() as http:
        silent = await http.post(
            f"{base}{MCP_PATH}", json=call("em_list_tasks", {}), headers={**headers, "mcp-name": "em_list_tasks"}
        )
        progressing = await http.post(
            f"{base}{MCP_PATH}",
            json=call("em_publish_task", PUBLISH_ARGS, progressToken="p"),
            headers={**headers, "mcp-name": "em_publish_task"},
        )

    assert silent.headers["content-type"] == "application/json"
    assert silent.json()["result"]["resultType"] == "complete"
    assert progressing.headers["content-type"] == "text/event-stream"
    assert progressing.text.count('"notifications/progress"') == 3
    assert '"notifications/message"' not in progressing.text  # no logLevel opt-in in _meta
    assert "mcp-session-id" not in silent.headers and "mcp-session-id" not in progressing.headers


async def test_the_module_serves_the_demo_from_another_process() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "app.demo.upstream", "--host", "127.0.0.1", "--port", str(port)]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient() as http:

            async def state_is_served() -> bool:
                try:
                    return (await http.get(f"{base}{STATE_PATH}")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(state_is_served, timeout=TIMEOUT, interval=0.05)
            async with asyncio.timeout(TIMEOUT), Client(f"{base}{MCP_PATH}", mode="legacy") as client:
                await client.call_tool("em_list_tasks", {})
            state = (await http.get(f"{base}{STATE_PATH}")).json()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=TIMEOUT)

    assert state["calls"] == {"em_list_tasks": 1}
    assert len(state["tasks"]) == 2


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay must be zero or a positive number of seconds"):
        DemoMarket(delay=-1)


def test_the_command_line_explains_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--host", "--port", "--delay", "--allow-host"):
        assert option in usage
