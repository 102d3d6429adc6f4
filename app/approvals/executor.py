"""Run an approved call upstream at most once, and record what happened.

Only the winner of the `approved → executing` compare-and-set calls the upstream (invariant 3
of docs/architecture.md); every other holder, replica, sweeper or repeated click loses that UPDATE and waits
for the stored result. The winner holds a lease it renews while the call runs; if the process
dies, the lease lapses and the sweeper marks the row `outcome_unknown`, which is reported as such
and never re-sent.

The request is rebuilt from the stored `params` text, byte for byte what the policy judged, with
a fresh JSON-RPC id (`airlock-<approval id>`) so it cannot collide with the agent's own ids. A
handshake-era call runs in the agent's upstream session, so server-to-client requests the
upstream makes while it runs (elicitation, sampling) reach the agent's held stream and the
agent's answers reach the upstream. If that session is gone upstream (404: nothing was run), a new
one is opened with the agent's original `initialize` parameters.

How each ending is classified:

| what happened                                   | status            |
|-------------------------------------------------|-------------------|
| a JSON-RPC result (even `isError: true`)        | `completed`       |
| a JSON-RPC error                                | `failed`          |
| could not connect, or refused with HTTP 4xx     | `failed` (did not run) |
| an answer larger than `max_response_bytes`      | `completed` (see below) |
| HTTP 5xx, timeout, connection lost mid-answer   | `outcome_unknown` |

A too-large answer is `completed`, not `outcome_unknown`: the upstream answered, so the call ran;
only its result cannot be relayed. The stored result is an `isError` result that says so (and the size), so the agent and the
reviewers read the same thing, and the call is never offered to run again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, overload

import aiohttp

from app.approvals.ledger import Ledger
from app.approvals.outcomes import too_large_outcome, too_large_text
from app.approvals.wording import cut
from app.jsonrpc import is_response, json_object, tool_error_result
from app.protocol import MCP_PROTOCOL_VERSION, MCP_SESSION_ID, Era
from app.sessions import SessionRegistry
from app.store import approvals as approval_store
from app.store.approvals import ApprovalRow, Status
from app.tracing import Traces, lifecycle_span
from app.upstream import ResponseTooLarge, Upstream, UpstreamResponse, UpstreamUnavailable

logger = logging.getLogger("airlock.executor")
_OUTCOME_TEXT_LIMIT: Final = 300
"""How much of a result's first text the one-line `outcome` keeps (the whole result is stored beside it)."""


Publish = Callable[[dict[str, Any]], Awaitable[None]]
"""Where a run publishes the upstream's in-flight messages (progress, elicitation, sampling).

The approvals service passes the hold that started the run (`hold.py`); the executor knows
nothing of who listens, and awaits each publication, so they keep their order and come before
the outcome is recorded.
"""


@dataclass(frozen=True, slots=True)
class Ending:
    status: Status
    result: dict[str, Any] | None
    outcome: str


class Executor:
    def __init__(
        self,
        ledger: Ledger,
        upstreams: Mapping[str, Upstream],
        sessions: SessionRegistry,
        *,
        lease_seconds: float,
        traces: Traces | None = None,
    ) -> None:
        self._ledger = ledger
        self._traces = traces
        self._upstreams = upstreams
        self._sessions = sessions
        self._lease = lease_seconds
        self.instance = f"airlock-{secrets.token_hex(6)}"

    async def execute(self, approval_id: str, *, publish: Publish | None = None) -> bool:
        """Claim and run an approved call; False when someone else claimed it (or it is not approved)."""
        row = await self._claim(approval_id)
        if row is None:
            return False
        renewer = asyncio.get_running_loop().create_task(self._renew(approval_id))
        try:
            with lifecycle_span(
                self._traces,
                "approval execute",
                parked_by=json.loads(row.forward_headers).get("traceparent"),
                attributes={"airlock.approval_id": row.id, "airlock.upstream": row.upstream, "airlock.tool": row.tool},
            ):
                ending = await self._run(row, publish)
        except asyncio.CancelledError:
            # Shutting down mid-call: leave the row `executing`; its lease lapses and the sweeper
            # reports it as outcome_unknown rather than pretending to know.
            raise
        except Exception as exc:
            logger.exception("executing approval %s failed unexpectedly", approval_id)
            ending = Ending("outcome_unknown", None, f"Airlock error while the call ran: {type(exc).__name__}")
        finally:
            renewer.cancel()
        await self._finish(row, ending)
        return True

    async def _claim(self, approval_id: str) -> ApprovalRow | None:
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            return await change.move(
                approval_id,
                expected="approved",
                to="executing",
                now=now,
                event="executing",
                actor=self.instance,
                executor=self.instance,
                lease_until=now + self._lease,
                executed_at=now,
            )

    async def _renew(self, approval_id: str) -> None:
        while True:
            await self._ledger.clock.sleep(self._lease / 3)
            async with self._ledger.db.write() as conn:
                await approval_store.renew_lease(
                    conn, approval_id, self.instance, self._ledger.clock.now() + self._lease
                )

    async def _finish(self, row: ApprovalRow, ending: Ending) -> None:
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            finished = await change.move(
                row.id,
                expected="executing",
                to=ending.status,
                now=now,
                event="executed",
                actor=self.instance,
                audit_outcome=ending.outcome[:500],
                audit_detail=ending.status,
                where=[approval_store.executed_by(self.instance)],
                finished_at=now,
                result=None if ending.result is None else json.dumps(ending.result),
                outcome=ending.outcome[:2000],
            )
            if finished is None:
                logger.error(
                    "approval %s: lost the executing lease before the result came back; "
                    "the result (%s) is logged here only",
                    row.id,
                    ending.outcome,
                )

    async def _run(self, row: ApprovalRow, publish: Publish | None) -> Ending:
        upstream = self._upstreams.get(row.upstream)
        if upstream is None:
            return Ending("failed", None, f"upstream {row.upstream!r} is no longer configured; the call did not run")
        request_id = f"airlock-{row.id}"
        body = (
            f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},"method":"tools/call","params":{row.params}}}'
        ).encode()
        headers = json.loads(row.forward_headers)
        headers.setdefault("accept", "application/json, text/event-stream")
        headers["content-type"] = "application/json"
        try:
            if row.era == Era.HANDSHAKE:
                return await self._run_in_session(row, upstream, body, headers, request_id, publish)
            return await self._send(upstream, body, headers, request_id, publish)
        except ResponseTooLarge as exc:
            text = too_large_text(row.tool, exc.size, exc.limit)
            return Ending(
                "completed",
                {"result": tool_error_result(text, modern=row.era == Era.MODERN)},
                too_large_outcome(exc.size, exc.limit),
            )

    async def _run_in_session(
        self,
        row: ApprovalRow,
        upstream: Upstream,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        publish: Publish | None,
    ) -> Ending:
        session = await self._sessions.get_any(row.session_id) if row.session_id else None
        if session is None:
            return Ending("failed", None, "the agent's session is unknown; the call did not run")
        headers[MCP_PROTOCOL_VERSION] = row.protocol_version
        if session.upstream_session_id is None:  # a session-less upstream
            return await self._send(upstream, body, headers, request_id, publish)
        headers[MCP_SESSION_ID] = session.upstream_session_id
        ending = await self._send(upstream, body, headers, request_id, publish, session_lost_ok=True)
        if ending is not None:
            return ending
        # The upstream no longer knows that session (404): nothing ran. Open a new one and send again.
        try:
            upstream_session = await upstream.open_session(session.initialize_params, row.protocol_version)
        except UpstreamUnavailable as exc:
            return Ending("failed", None, f"{exc}; the call did not run")
        await self._sessions.remap(session, upstream_session)
        headers.pop(MCP_SESSION_ID)
        if upstream_session:
            headers[MCP_SESSION_ID] = upstream_session
        return await self._send(upstream, body, headers, request_id, publish)

    @overload
    async def _send(
        self, upstream: Upstream, body: bytes, headers: dict[str, str], request_id: str, publish: Publish | None
    ) -> Ending: ...

    @overload
    async def _send(
        self,
        upstream: Upstream,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        publish: Publish | None,
        *,
        session_lost_ok: bool,
    ) -> Ending | None: ...

    async def _send(
        self,
        upstream: Upstream,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        publish: Publish | None,
        *,
        session_lost_ok: bool = False,
    ) -> Ending | None:
        """Send the call; None only when `session_lost_ok` and the upstream answered 404."""
        try:
            async with upstream.request("POST", headers=headers, body=body, fresh_connection=True) as response:
                if response.status == 404 and session_lost_ok:
                    return None  # the upstream no longer knows the session: nothing ran; open a new one
                return await self._read_ending(response, request_id, publish)
        except UpstreamUnavailable as exc:
            return Ending("failed", None, f"{exc}; the call did not run")
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return Ending(
                "outcome_unknown",
                None,
                f"the connection to the upstream failed while the call ran ({type(exc).__name__})",
            )

    async def _read_ending(self, response: UpstreamResponse, request_id: str, publish: Publish | None) -> Ending:
        if response.status >= 500:
            return Ending("outcome_unknown", None, f"the upstream answered HTTP {response.status}")
        if response.is_sse and response.status == 200:
            async for event in response.events():
                if event.comment is not None or not event.data:
                    continue
                message = json_object(event.data)
                if message is None:
                    continue
                if is_response(message) and message["id"] == request_id:
                    return _ending_of(message)
                if publish is not None:
                    await publish(message)
            return Ending("outcome_unknown", None, "the upstream closed the stream without an answer")
        message = json_object(await response.read())
        if message is not None and is_response(message):
            return _ending_of(message)
        if 400 <= response.status < 500:
            return Ending("failed", None, f"the upstream refused the call with HTTP {response.status}; it did not run")
        return Ending(
            "outcome_unknown", None, f"the upstream's answer was not a JSON-RPC response (HTTP {response.status})"
        )


def _ending_of(message: dict[str, Any]) -> Ending:
    if "error" in message:
        error = message["error"] if isinstance(message["error"], dict) else {"message": str(message["error"])}
        return Ending("failed", {"error": error}, f"upstream error {error.get('code')}: {error.get('message')}")
    result = message.get("result")
    if not isinstance(result, dict):
        return Ending("completed", {"result": {"content": [], "isError": False}}, "ok (empty result)")
    if result.get("isError"):
        return Ending("completed", {"result": result}, "tool error: " + _first_text(result))
    return Ending("completed", {"result": result}, "ok: " + _first_text(result))


def _first_text(result: dict[str, Any]) -> str:
    for item in result.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text":
            return cut(str(item.get("text", "")), _OUTCOME_TEXT_LIMIT, at_word=True)
    return ""
