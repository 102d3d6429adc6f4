"""The upstreams behind an endpoint: the upstream sessions an endpoint session opens, and Airlock's own requests.

Handshake era: one agent session on `/mcp/{endpoint}` maps to one upstream session per upstream,
opened on first use with the agent's own `initialize` parameters, and recorded as an ordinary
Airlock session of that upstream (`app/sessions.py`): bound to the agent, bounded, idled out and
released like any other, and the session an approved call of it runs in. Which upstream sessions
an endpoint session opened is kept here, per process (see `aggregate.py` for what that means
across replicas), for at most `OPENED_LIMIT` endpoint sessions.

Also here: Airlock's own requests to an upstream (a list page, `server/discover`), which read one
JSON-RPC result and raise `MemberRefused` for anything else. This module does not decide what to
ask or how to merge answers (`aggregate.py`, `merge.py`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from app.gateway.handshake import Session
from app.protocol import MCP_PROTOCOL_VERSION, MCP_SESSION_ID
from app.sessions import SessionRegistry
from app.types import JSONObject
from app.upstream import Upstream

OPENED_LIMIT: Final = 50_000
"""Endpoint sessions whose upstream sessions this process remembers (least recently used dropped)."""
_POST_DRAIN_SECONDS: Final = 1.0


class EndpointSession(Session, Protocol):
    """A handshake-era session, plus what its `initialize` asked (replayed to each member upstream)."""

    @property
    def initialize_params(self) -> str: ...


class MemberRefused(Exception):
    """An upstream answered Airlock's own request with an error (or with no answer)."""

    def __init__(self, reason: str, *, status: int = 200) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class _Opened:
    sessions: dict[str, str] = field(default_factory=dict)
    """Upstream name → the Airlock session id of the upstream session."""
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)


class MemberSessions:
    """The upstream sessions each endpoint session opened, in this process."""

    def __init__(self, upstreams: Mapping[str, Upstream]) -> None:
        self._upstreams = upstreams
        self._opened: OrderedDict[str, _Opened] = OrderedDict()

    async def session_for(
        self, registry: SessionRegistry, session: EndpointSession, upstream: Upstream
    ) -> EndpointSession:
        """The upstream session behind `session`, opened on first use.

        Raises:
            UpstreamUnavailable: the upstream cannot be reached or refused to initialize.
        """
        opened = self._entry(session.id)
        async with opened.locks.setdefault(upstream.name, asyncio.Lock()):
            known = opened.sessions.get(upstream.name)
            member = await registry.get(known) if known is not None else None
            if member is not None and member.agent == session.agent:
                return member
            upstream_session = await upstream.open_session(session.initialize_params, session.protocol_version)
            member = await registry.create(
                agent=session.agent,
                upstream=upstream.name,
                upstream_session_id=upstream_session,
                protocol_version=session.protocol_version,
                initialize_params=session.initialize_params,
            )
            opened.sessions[upstream.name] = member.id
            return member

    async def opened(
        self, registry: SessionRegistry, session: EndpointSession
    ) -> list[tuple[Upstream, EndpointSession]]:
        """The upstream sessions `session` opened that are still open."""
        entry = self._opened.get(session.id)
        found: list[tuple[Upstream, EndpointSession]] = []
        for name, member_id in (entry.sessions if entry is not None else {}).items():
            member = await registry.get(member_id)
            if member is not None and name in self._upstreams:
                found.append((self._upstreams[name], member))
        return found

    async def end(self, registry: SessionRegistry, session: EndpointSession) -> None:
        """End `session` and every upstream session it opened (each released upstream)."""
        ids = [member.id for _, member in await self.opened(registry, session)]
        self._opened.pop(session.id, None)
        for session_id in [*ids, session.id]:
            row = await registry.get(session_id)  # from the registry's cache: just read
            if row is not None:
                await registry.end(row)

    def _entry(self, session_id: str) -> _Opened:
        entry = self._opened.setdefault(session_id, _Opened())
        self._opened.move_to_end(session_id)
        while len(self._opened) > OPENED_LIMIT:
            self._opened.popitem(last=False)
        return entry


def session_headers(member: EndpointSession) -> dict[str, str]:
    """The headers of Airlock's own request in an upstream session."""
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        MCP_PROTOCOL_VERSION: member.protocol_version,
    }
    if member.upstream_session_id:
        headers[MCP_SESSION_ID] = member.upstream_session_id
    return headers


async def post_upstream(upstream: Upstream, headers: Mapping[str, str], body: bytes) -> None:
    """Send a notification or a response upstream; its answer says nothing Airlock acts on.

    Raises:
        UpstreamUnavailable: as `Upstream.request`.
    """
    async with upstream.request("POST", headers=headers, body=body) as response:
        await response.drain(_POST_DRAIN_SECONDS)


async def ask_upstream(upstream: Upstream, headers: Mapping[str, str], body: bytes) -> JSONObject:
    """POST one request of Airlock's own and read its result.

    Raises:
        UpstreamUnavailable, ResponseTooLarge: as `Upstream.request` and `UpstreamResponse.answer`.
        MemberRefused: any answer but a JSON-RPC result (`status` is the HTTP status).
    """
    async with upstream.request("POST", headers=headers, body=body) as response:
        if response.status != 200:
            raise MemberRefused(f"HTTP {response.status}", status=response.status)
        answer = await response.answer()
    if answer is None or not isinstance(answer.get("result"), dict):
        error = answer.get("error") if answer is not None else None
        raise MemberRefused(f"error {error.get('message') if isinstance(error, dict) else 'no answer'}")
    result: JSONObject = answer["result"]
    return result
