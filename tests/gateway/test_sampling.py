"""Sampling passes through Airlock: the upstream asks the agent's LLM, the agent answers, the call goes on.

Provenance: spec (`sampling/createMessage` is a server-to-client request; in the handshake era it
rides the call's SSE stream and the client answers with a POST, in 2026-07-28 the first
`tools/call` returns `input_required` and the client repeats the call with `inputResponses` and
the echoed `requestState`). The upstream here is the official SDK's `MCPServer` with a `Sample`
resolver, which picks the transport per era; the agent is the official SDK client.

This module has no `from __future__ import annotations`: the SDK resolves the `Resolve(...)`
marker from the tool's annotations at registration.
"""

from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from mcp.client.session import ClientRequestContext
from mcp.server.mcpserver import MCPServer, Resolve, Sample
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import CreateMessageRequestParams, CreateMessageResult, ErrorData, SamplingMessage, TextContent

from tests.conftest import StartAirlock
from tests.net import serve

ALLOW_ALL: dict[str, Any] = {"version": "1", "default": "allow"}


def build_summariser(calls: Counter[str]) -> Any:
    """An upstream with one tool that asks the client's LLM for a one-line summary."""
    server: MCPServer = MCPServer("summariser")

    async def ask_for_summary(text: str) -> Sample:
        return Sample(
            [SamplingMessage(role="user", content=TextContent(type="text", text=f"Summarise: {text}"))],
            max_tokens=40,
            system_prompt="One line.",
        )

    @server.tool(name="summarise")
    async def summarise(text: str, summary: Annotated[CreateMessageResult, Resolve(ask_for_summary)]) -> str:
        """Summarise a text in one line with the caller's model."""
        calls["summarise"] += 1
        assert isinstance(summary.content, TextContent)
        return f"{summary.model}: {summary.content.text}"

    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
async def upstream_url(calls: Counter[str]) -> AsyncIterator[str]:
    """Overrides the suite's demo upstream: the Airlock under test fronts the summariser."""
    async with serve(build_summariser(calls)) as url:
        yield f"{url}/mcp"


async def test_a_sampling_request_round_trips_through_airlock_to_the_agent_and_back(
    start_airlock: StartAirlock, calls: Counter[str], mode: str
) -> None:
    airlock = await start_airlock(policy=ALLOW_ALL)
    asked: list[CreateMessageRequestParams] = []

    async def llm(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
        asked.append(params)
        return CreateMessageResult(
            role="assistant", model="agent-llm", content=TextContent(type="text", text="a tidy one-liner")
        )

    async with airlock.client(mode=mode, sampling_callback=llm) as client:
        result = await client.call_tool("summarise", {"text": "a long report about escrow refunds"})
    assert not result.is_error, result.content
    assert isinstance(result.content[0], TextContent)
    assert result.content[0].text == "agent-llm: a tidy one-liner"
    [params] = asked
    assert isinstance(params.messages[0].content, TextContent)
    assert params.messages[0].content.text == "Summarise: a long report about escrow refunds"
    assert (params.max_tokens, params.system_prompt) == (40, "One line.")
    assert calls["summarise"] == 1


async def test_an_agent_that_refuses_to_sample_sees_its_refusal_and_the_tool_body_never_runs(
    start_airlock: StartAirlock, calls: Counter[str], mode: str
) -> None:
    airlock = await start_airlock(policy=ALLOW_ALL)

    async def refuse(context: ClientRequestContext, params: CreateMessageRequestParams) -> ErrorData:
        return ErrorData(code=-1, message="the user declined to share the model")

    async with airlock.client(mode=mode, sampling_callback=refuse) as client:
        with pytest.raises(MCPError, match="the user declined to share the model"):
            await client.call_tool("summarise", {"text": "secret"})
    assert calls["summarise"] == 0
