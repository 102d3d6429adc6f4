"""Fetch an upstream's tool catalog outside any agent's session, for `policy check` and `explain`.

The gateway learns an upstream's tools through an agent's own session (`app/gateway/`). Checking
or explaining a policy has no agent, so this opens a short handshake-era session of its own
(`Upstream.open_session`, then `Upstream.fetch_catalog`, the same code the gateway uses, so the
configured URL and credential headers apply), and ends it with DELETE. A stdio upstream's
program is started for the probe and stopped after it.

Not here: deciding anything from the catalog (`lint.py`, `explain.py`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

import aiohttp

from app.config import UpstreamSettings
from app.policy.explain import ToolFacts
from app.protocol import MCP_PROTOCOL_VERSION, MCP_SESSION_ID
from app.stdio.bridge import StdioBridge
from app.upstream import DEFAULT_MAX_RESPONSE_BYTES, ToolCatalog, Upstream, UpstreamUnavailable, new_client_session

PROTOCOL_VERSION: Final = "2025-06-18"
"""A handshake-era version every MCP server of the last year speaks.

An upstream that speaks only 2026-07-28 (no `initialize`) cannot be probed yet: it is reported as
unavailable, and `explain` then says annotations and schemas are unknown."""
CLIENT_INFO: Final = {"name": "airlock-policy", "version": "1"}
PROBE_TIMEOUT: Final = 15.0


class CatalogUnavailable(Exception):
    """The upstream's tools could not be listed; the message says why, in one sentence."""


def tool_facts(catalog: ToolCatalog) -> dict[str, ToolFacts]:
    """The catalog as `explain` reads it: each tool's annotations and input schema."""
    return {
        name: ToolFacts(annotations, catalog.input_schemas.get(name))
        for name, annotations in catalog.annotations.items()
    }


async def fetch_tools(settings: UpstreamSettings, *, timeout: float = PROBE_TIMEOUT) -> ToolCatalog:
    """List the upstream's tools (every page) through a session of its own.

    Raises:
        CatalogUnavailable: cannot connect, the upstream refused, answered no tool list, or took
            longer than `timeout` seconds.
    """
    # A stdio upstream is started for the probe alone, through a bridge of its own (app/stdio/bridge.py).
    async with (
        new_client_session() as http,
        StdioBridge([settings], max_line_bytes=DEFAULT_MAX_RESPONSE_BYTES).run() as bridge,
    ):
        upstream = Upstream(bridge.point(settings), http)
        try:
            async with asyncio.timeout(timeout):
                await _list_tools(upstream)
        except UpstreamUnavailable as exc:
            raise CatalogUnavailable(str(exc)) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise CatalogUnavailable(f"upstream {settings.name!r} failed: {exc or type(exc).__name__}") from None
        except TimeoutError:
            raise CatalogUnavailable(
                f"upstream {settings.name!r} did not list its tools within {timeout:g} s"
            ) from None
    if not upstream.catalog.listed:
        raise CatalogUnavailable(f"upstream {settings.name!r} answered tools/list without a tool list")
    return upstream.catalog


async def _list_tools(upstream: Upstream) -> None:
    params = json.dumps({"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO})
    session_id = await upstream.open_session(params, PROTOCOL_VERSION)
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        MCP_PROTOCOL_VERSION: PROTOCOL_VERSION,
    }
    try:
        await upstream.fetch_catalog(headers, None, session_id)
    finally:
        if session_id:
            await _end_session(upstream, {**headers, MCP_SESSION_ID: session_id})


async def _end_session(upstream: Upstream, headers: dict[str, str]) -> None:
    """Best effort: a server that keeps the session until it expires is not an error."""
    try:
        async with upstream.request("DELETE", headers=headers):
            pass
    except (UpstreamUnavailable, aiohttp.ClientError):
        pass
