"""One endpoint in front of two upstreams: `/mcp/team` serves the demo market and a notes server.

Provenance: Airlock-defined behaviour (issue 14, item 2), driven through the official `mcp` Client
in `mode="auto"` (2026-07-28) and `mode="legacy"` (handshake era) against Airlock on loopback, in
front of the demo upstream and a second server built on the official SDK (`MCPServer`), each with
its own policy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import (
    Completion,
    CreateMessageRequestParams,
    CreateMessageResult,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)

from app.demo.upstream import DemoMarket
from tests.gateway.test_sampling import build_summariser
from tests.harness import UPSTREAM, AirlockUnderTest, mcp_client, new_task, running_airlock, settings_for_test
from tests.net import serve

ENDPOINT = "team"
NOTES = "notes"
NOTES_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "rules": [{"id": "shred", "tool": "shred_notes", "action": "approve", "reason": "shredding is irreversible"}],
}


def build_notes(calls: Counter[str], seen: list[str] | None = None) -> Any:
    """A second upstream: a tool named like one of the market's, one more tool, resources, a prompt, completions.

    `seen` collects the prompt names and template URIs completions were asked for.
    """
    seen = [] if seen is None else seen
    server: MCPServer = MCPServer("notes")

    @server.tool(name="em_get_task")
    def em_get_task(task_id: str) -> str:
        """The note about a task (same name as the market's tool: the prefix tells them apart)."""
        calls["em_get_task"] += 1
        return f"note about {task_id}"

    @server.tool(name="write_note")
    def write_note(text: str) -> str:
        """Write a note."""
        calls["write_note"] += 1
        return f"noted: {text}"

    @server.resource("note://shopping")
    def shopping() -> str:
        """The shopping list."""
        return "eggs, flour"

    @server.resource("note://{name}")
    def note(name: str) -> str:
        """Any note, by name."""
        return f"the note {name}"

    async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
        seen.append(ref.name if isinstance(ref, PromptReference) else ref.uri)
        return Completion(values=[f"{argument.value}-week", f"{argument.value}-month"])

    server.completion()(complete)  # type: ignore[no-untyped-call]  # the SDK leaves completion() untyped

    @server.prompt(name="summarise")
    def summarise(topic: str) -> str:
        """Ask for a summary."""
        return f"Summarise {topic}."

    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)


INITIALIZE: dict[str, Any] = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "raw", "version": "1"},
}


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
async def notes_url(calls: Counter[str]) -> AsyncIterator[str]:
    async with serve(build_notes(calls)) as url:
        yield f"{url}/mcp"


@pytest.fixture
async def airlock(
    tmp_path: Path, upstream_url: str, notes_url: str, database_url: str
) -> AsyncIterator[AirlockUnderTest]:
    async with started(tmp_path, upstream_url, notes_url, database_url) as running:
        yield running


def started(
    tmp_path: Path, market_url: str, notes_url: str, database_url: str, *, members: list[str] | None = None
) -> Any:
    notes_policy = tmp_path / "notes.json"
    notes_policy.write_text(json.dumps(NOTES_POLICY), encoding="utf-8")
    market = {"name": UPSTREAM, "url": market_url, "policy": str(tmp_path / "policy.json")}
    notes = {"name": NOTES, "url": notes_url, "policy": str(notes_policy)}
    settings = settings_for_test(
        tmp_path,
        market_url,
        database_url,
        upstreams=[market, notes],
        endpoints=[{"name": ENDPOINT, "upstreams": members or [UPSTREAM, NOTES], "prefixes": {UPSTREAM: "market"}}],
        approvals={"hold_seconds": 30},
    )
    return running_airlock(settings)


def team_client(airlock: AirlockUnderTest, token: str, mode: str, **kwargs: Any) -> Any:
    return mcp_client(f"{airlock.url}/mcp/{ENDPOINT}", token, mode=mode, **kwargs)


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if isinstance(item, TextContent))


async def test_tools_list_merges_both_upstreams_under_names_that_say_where_they_come_from(
    airlock: AirlockUnderTest, mode: str
) -> None:
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"market__em_get_task", "market__em_cancel_task", "notes__em_get_task", "notes__write_note"} <= names
    assert "market__em_rate_worker" not in names, "the market's policy hides it, through the endpoint too"
    assert all(name.startswith(("market__", "notes__")) for name in names)


async def test_a_call_is_routed_to_its_upstream_under_the_upstreams_own_name(
    airlock: AirlockUnderTest, market: DemoMarket, calls: Counter[str], mode: str
) -> None:
    task = new_task(market, title="Water the plants")
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        from_market = await client.call_tool("market__em_get_task", {"task_id": task.id})
        from_notes = await client.call_tool("notes__em_get_task", {"task_id": task.id})
    assert not from_market.is_error and from_market.structured_content["title"] == "Water the plants"
    assert text_of(from_notes) == f"note about {task.id}"
    assert (market.calls["em_get_task"], calls["em_get_task"]) == (1, 1)


async def test_each_call_is_judged_by_its_own_upstreams_policy(
    airlock: AirlockUnderTest, market: DemoMarket, calls: Counter[str], mode: str
) -> None:
    """The market's rule holds `em_cancel_task` for approval; the notes policy allows `write_note`."""
    task = new_task(market)
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        written = await client.call_tool("notes__write_note", {"text": "buy eggs"})
        cancel = asyncio.ensure_future(client.call_tool("market__em_cancel_task", {"task_id": task.id, "reason": "x"}))
        pending = await airlock.wait_pending()
        assert (pending["upstream"], pending["tool"]) == (UPSTREAM, "em_cancel_task")
        assert market.calls["em_cancel_task"] == 0
        assert (await airlock.decide(pending["id"])).status_code == 200
        async with asyncio.timeout(10):
            cancelled = await cancel
    assert text_of(written) == "noted: buy eggs" and calls["write_note"] == 1
    assert not cancelled.is_error, text_of(cancelled)
    assert market.calls["em_cancel_task"] == 1 and market.tasks[task.id].status == "cancelled"


@pytest.mark.parametrize(
    "hostile",
    [
        "em_cancel_task",  # no prefix
        "market_em_cancel_task",  # half a separator
        "notes__market__em_cancel_task",  # one upstream's prefix, then another's
        "market__",  # a prefix and nothing else
        "MARKET__em_cancel_task",  # another case
        "market__em_cancel_task\u200b",  # an invisible character after the name
    ],
)
async def test_a_name_that_tries_to_reach_past_its_prefix_runs_nothing(
    airlock: AirlockUnderTest, market: DemoMarket, calls: Counter[str], hostile: str
) -> None:
    task = new_task(market)
    async with team_client(airlock, await airlock.agent_token(), "legacy") as client:
        result = await client.call_tool(hostile, {"task_id": task.id, "reason": "x"})
    assert result.is_error
    assert "Unknown tool" in text_of(result), text_of(result)
    assert market.calls["em_cancel_task"] == 0 and market.tasks[task.id].status == "published"
    assert sum(calls.values()) == 0
    assert await airlock.approvals("pending") == []


async def test_resources_and_prompts_are_merged_and_routed(airlock: AirlockUnderTest, mode: str) -> None:
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        read = await client.read_resource("airlock:notes/note://shopping")
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        prompt = await client.get_prompt("notes__summarise", {"topic": "the week"})
    assert resources == ["airlock:notes/note://shopping"]
    assert isinstance(read.contents[0], TextResourceContents) and read.contents[0].text == "eggs, flour"
    assert prompts == ["notes__summarise"]
    assert isinstance(prompt.messages[0].content, TextContent)
    assert prompt.messages[0].content.text == "Summarise the week."


async def test_a_resource_no_upstream_serves_is_refused_with_a_clear_error(
    airlock: AirlockUnderTest, mode: str
) -> None:
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        with pytest.raises(MCPError, match="no upstream of endpoint 'team'"):
            await client.read_resource("note://shopping")


async def test_an_upstream_that_is_down_drops_out_of_the_list_and_the_endpoint_serves_the_rest(
    tmp_path: Path,
    upstream_url: str,
    database_url: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve(build_notes(Counter())) as stopped:
        down = f"{stopped}/mcp"  # nothing listens there once the block ends
    async with started(tmp_path, upstream_url, down, database_url) as airlock:
        token = await airlock.agent_token()
        with caplog.at_level(logging.WARNING, logger="airlock.gateway"):
            async with team_client(airlock, token, mode) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                unreachable = await client.call_tool("notes__write_note", {"text": "x"})
    assert "market__em_get_task" in names and not any(name.startswith("notes__") for name in names)
    assert any("notes left out of tools/list" in record.getMessage() for record in caplog.records)
    assert unreachable.is_error and "unreachable" in text_of(unreachable)


async def test_each_upstream_keeps_its_own_path(airlock: AirlockUnderTest, mode: str) -> None:
    token = await airlock.agent_token()
    async with mcp_client(f"{airlock.url}/mcp/{NOTES}", token, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {"em_get_task", "write_note"}


async def test_a_cursor_the_endpoint_did_not_hand_out_is_refused(airlock: AirlockUnderTest, mode: str) -> None:
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        with pytest.raises(MCPError, match="cursor"):
            await client.list_tools(cursor="bm90ZXM=")


async def test_ending_the_endpoint_session_ends_the_upstream_sessions_it_opened(airlock: AirlockUnderTest) -> None:
    token = await airlock.agent_token()
    url = f"{airlock.url}/mcp/{ENDPOINT}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        opened = await http.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
        )
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        listed = await http.post(url, headers=session, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert listed.status_code == 200 and listed.json()["result"]["tools"]
        assert (await http.delete(url, headers=session)).status_code == 200
        after = await http.post(url, headers=session, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
    assert after.status_code == 404
    registry = airlock.runtime.sessions
    open_rows = [await registry.get(row_id) for row_id in list(registry._cache)]
    assert [row for row in open_rows if row is not None] == []


async def test_a_tool_call_sent_as_a_notification_is_refused_and_reaches_no_upstream(
    airlock: AirlockUnderTest, market: DemoMarket, calls: Counter[str]
) -> None:
    """A notification gets no answer, so it could carry no verdict: not passed on to any upstream session."""
    task = new_task(market)
    token = await airlock.agent_token()
    url = f"{airlock.url}/mcp/{ENDPOINT}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        opened = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        listed = await http.post(url, headers=session, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert listed.status_code == 200  # both upstream sessions are open now
        for name in ("em_cancel_task", "market__em_cancel_task"):
            call = {"method": "tools/call", "params": {"name": name, "arguments": {"task_id": task.id, "reason": "x"}}}
            refused = await http.post(url, headers=session, json={"jsonrpc": "2.0", **call})
            assert refused.status_code == 400
            assert refused.json()["error"]["message"] == "Invalid Request: tools/call must be a request with an id"
    assert market.calls["em_cancel_task"] == 0 and market.tasks[task.id].status == "published"
    assert sum(calls.values()) == 0


async def test_resource_templates_are_prefixed_and_completions_reach_the_upstream_under_its_own_names(
    tmp_path: Path, upstream_url: str, database_url: str, mode: str
) -> None:
    seen: list[str] = []
    async with serve(build_notes(Counter(), seen)) as notes:
        async with started(tmp_path, upstream_url, f"{notes}/mcp", database_url) as airlock:
            async with team_client(airlock, await airlock.agent_token(), mode) as client:
                templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
                read = await client.read_resource("airlock:notes/note://groceries")
                by_prompt = await client.complete(
                    PromptReference(type="ref/prompt", name="notes__summarise"), {"name": "topic", "value": "this"}
                )
                by_template = await client.complete(
                    ResourceTemplateReference(type="ref/resource", uri="airlock:notes/note://{name}"),
                    {"name": "name", "value": "shop"},
                )
    assert templates == ["airlock:notes/note://{name}"]
    assert isinstance(read.contents[0], TextResourceContents) and read.contents[0].text == "the note groceries"
    assert by_prompt.completion.values == ["this-week", "this-month"]
    assert by_template.completion.values == ["shop-week", "shop-month"]
    assert seen == ["summarise", "note://{name}"]


async def test_another_agent_presenting_an_endpoint_session_id_gets_404(airlock: AirlockUnderTest) -> None:
    """The session, and the upstream sessions behind it, belong to the agent that opened it (invariant 4)."""
    url = f"{airlock.url}/mcp/{ENDPOINT}"
    accept = {"Accept": "application/json, text/event-stream"}
    owner = {**accept, "Authorization": f"Bearer {await airlock.agent_token('agent-1')}"}
    other = {**accept, "Authorization": f"Bearer {await airlock.agent_token('agent-2')}"}
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(
            url, headers=owner, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}
        )
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        assert (await http.post(url, headers={**owner, **session}, json=listing)).status_code == 200
        stolen = await http.post(url, headers={**other, **session}, json=listing)
        deleted = await http.delete(url, headers={**other, **session})
        still = await http.post(url, headers={**owner, **session}, json=listing)
    assert (stolen.status_code, deleted.status_code, still.status_code) == (404, 404, 200)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "Parse error"),
        (b'[{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}]', 400, "batches are not supported"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": 7}}', 200, "cursor"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {}}', 200, "no upstream of endpoint"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": ["x"]}}', 200, "no upstream"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "completion/complete", "params": {"ref": 1}}', 200, "no upstream"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "tasks/list"}', 200, "does not serve tasks/list"),
    ],
)
async def test_a_hostile_or_malformed_request_gets_a_clear_json_rpc_error(
    airlock: AirlockUnderTest, body: bytes, status: int, message: str
) -> None:
    url = f"{airlock.url}/mcp/{ENDPOINT}"
    headers = {
        "Authorization": f"Bearer {await airlock.agent_token()}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        opened = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        answer = await http.post(url, headers=session, content=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]


async def test_a_sampling_request_reaches_the_agent_through_the_endpoint_and_its_answer_the_upstream(
    tmp_path: Path, upstream_url: str, database_url: str, mode: str
) -> None:
    """The summariser (`test_sampling.py`) asks the agent's LLM mid-call; the answer finds its way back."""
    calls: Counter[str] = Counter()
    async with serve(build_summariser(calls)) as summariser:
        async with started(tmp_path, upstream_url, f"{summariser}/mcp", database_url) as airlock:

            async def llm(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
                return CreateMessageResult(role="assistant", model="m", content=TextContent(type="text", text="short"))

            token = await airlock.agent_token()
            async with team_client(airlock, token, mode, sampling_callback=llm) as client:
                result = await client.call_tool("notes__summarise", {"text": "a long report"})
    assert not result.is_error, text_of(result)
    assert text_of(result) == "m: short" and calls["summarise"] == 1


async def test_the_endpoint_tells_the_agent_which_prefix_is_which_server(airlock: AirlockUnderTest, mode: str) -> None:
    async with team_client(airlock, await airlock.agent_token(), mode) as client:
        instructions = client.session.discover_result or client.session.initialize_result
    assert instructions is not None
    assert "market__ for execution-market, notes__ for notes" in (instructions.instructions or "")
