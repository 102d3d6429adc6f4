"""`/mcp/{endpoint}`: one endpoint in front of several upstreams (`[[endpoints]]`, issue 14 item 2).

Lists are merged (`merge.py`) under names that say where each item comes from (`app/endpoints.py`);
a message that names one item (`tools/call`, `prompts/get`, `resources/read`, `resources/subscribe`,
`resources/unsubscribe`, `completion/complete`) is routed to its upstream with the name rewritten
to the upstream's own, and then served exactly as `/mcp/{upstream}` serves it (`handshake.py`,
`modern.py`): judged by **that upstream's** policy, audited under that upstream, parked and
executed there. The policy therefore sees the upstream's own tool name, so rules written for the
upstream keep working, and what it judged (the rewritten message) is exactly what is forwarded.
A name that no upstream's prefix begins is refused as unknown and never forwarded anywhere.

Both client eras, each spoken to the upstreams in the client's own era:

- handshake era: `initialize` is answered by Airlock itself, with its own session. That session
  opens one upstream session per upstream, lazily (on the first message that needs it), with the
  agent's own `initialize` parameters; each is an ordinary Airlock session of that upstream
  (`app/sessions.py`), so held calls, the executor and the idle janitor treat it as any other.
  DELETE ends them all.
- 2026-07-28: each request stands alone. `server/discover` asks every upstream; when one does not
  speak 2026-07-28 (a stdio server, say), the endpoint answers as a handshake-only server does (a
  JSON-RPC error), and `mode="auto"` clients fall back to `initialize`.

An upstream that is down (or answers a list with an error) drops out of the merged list with a
log line; the others are still listed.

Deliberate limits (DO NOT "fix" without reading why):
- No GET stream on an endpoint (405, which the spec allows): merging several upstreams' streams
  would need event ids of our own for each. Notifications and server requests made while the
  agent's request is open still reach it on that request's stream.
- Resuming a held call's stream with `Last-Event-ID` is served on `/mcp/{upstream}` only; on an
  endpoint, the identical retry of a held call re-attaches to its approval instead.
- A client's answers to server requests and its notifications go to every upstream session the
  agent's endpoint session has opened (all of them the same agent's): request ids are the
  upstreams' own, so only the one that asked recognises the answer.
- Which upstream sessions an endpoint session opened is kept per process; on another replica the
  session opens fresh upstream sessions (what an upstream kept in memory for it is not there).
- An endpoint session holds one of the agent's `[sessions] max_per_agent` slots, and each
  upstream session it opens one more.
- The contents of a `resources/read` answer carry the upstream's own URIs.

At ~530 lines this is past the ~400 at which a module is usually split. Both eras share the
routing and merging here, and each era's front is small; if one grows, the handshake era's front
(`initialize`, the session checks, passing notifications on) is the piece to move out, with
`members.py` beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from app.endpoints import EndpointSettings, Naming, Routed
from app.gateway import handshake, modern
from app.gateway.exchange import Exchange
from app.gateway.members import (
    EndpointSession,
    MemberRefused,
    MemberSessions,
    ask_upstream,
    post_upstream,
    session_headers,
)
from app.gateway.merge import LISTINGS, BadCursor, Listing, decode_cursor, merge_pages
from app.gateway.respond import send_empty, send_error, send_json
from app.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Message,
    MessageError,
    dumps,
    parse_message,
    result_response,
    tool_error_result,
)
from app.protocol import DEFAULT_VERSION, HANDSHAKE_VERSIONS, MCP_NAME, MCP_SESSION_ID
from app.sessions import SessionRegistry
from app.tasks import extension, listen
from app.types import JSONObject, Send
from app.types import Message as AsgiMessage
from app.upstream import ResponseTooLarge, Upstream, UpstreamUnavailable, forwardable_headers

logger = logging.getLogger("airlock.gateway")

Ask = Callable[[Upstream, str, JSONObject], Awaitable[JSONObject]]
"""Airlock's own request to one upstream, in the client's era: (upstream, method, params) → result."""

SERVER_NAME: Final = "airlock"
NOTIFICATION_PREFIX: Final = "notifications/"


class Aggregate:
    """One `[[endpoints]]` entry, served.

    Args:
        settings: the endpoint.
        upstreams: the runtime's upstreams by name (filled when the runtime starts).
    """

    def __init__(self, settings: EndpointSettings, upstreams: Mapping[str, Upstream]) -> None:
        self.settings = settings
        self.naming = Naming(settings)
        self._upstreams = upstreams
        self._members = MemberSessions(upstreams)

    @property
    def front(self) -> Upstream:
        """The exchange's upstream until a message is routed (the first member: its name is never judged)."""
        return self._upstreams[self.settings.upstreams[0]]

    async def serve(self, exchange: Exchange) -> None:
        version = exchange.protocol_version
        if version is None or version in HANDSHAKE_VERSIONS:
            await self._serve_handshake(exchange)
        elif exchange.method != "POST":
            await modern.serve(exchange)  # its 405
        else:
            message = await modern.admit(exchange)
            if message is not None:
                await self._serve_modern(exchange, message)

    # The handshake era.

    async def _serve_handshake(self, exchange: Exchange) -> None:
        if exchange.method not in ("POST", "DELETE"):
            await send_error(
                exchange.send,
                405,
                INVALID_REQUEST,
                f"Method Not Allowed: endpoint {self.settings.name!r} has no GET stream",
                headers=[(b"allow", b"POST, DELETE")],
            )
            return
        try:
            message = parse_message(exchange.body) if exchange.method == "POST" else None
        except MessageError as exc:
            await send_error(exchange.send, 400, exc.code, exc.message, request_id=exc.request_id)
            return
        if message is not None and message.kind == "request" and message.method == "initialize":
            await self._initialize(exchange, message)
            return
        session = await self._session(exchange)
        if session is None:
            return
        if message is None:
            await self._members.end(exchange.gateway.sessions, session)
            await send_empty(exchange.send, 200, _session_header(session.id))
            return
        await self._handshake_message(exchange, session, message)

    async def _initialize(self, exchange: Exchange, message: Message) -> None:
        if await handshake.refused_initialize(exchange, message):
            return
        requested = message.params.get("protocolVersion")
        version = requested if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS else DEFAULT_VERSION
        params = message.body.get("params")
        session = await exchange.gateway.sessions.create(
            agent=exchange.agent,
            upstream=self.settings.name,
            upstream_session_id=None,
            protocol_version=version,
            initialize_params=dumps(params if isinstance(params, dict) else {}).decode("utf-8"),
        )
        # No `resources.subscribe`: updates would arrive on upstream GET streams, which an endpoint does not merge.
        result: JSONObject = {
            "protocolVersion": version,
            "capabilities": {"tools": {}, "prompts": {}, "resources": {}, "completions": {}},
            "serverInfo": {"name": f"{SERVER_NAME}:{self.settings.name}", "version": "1"},
            "instructions": self._instructions(),
        }
        await send_json(exchange.send, 200, result_response(message.id, result), _session_header(session.id))

    def _instructions(self) -> str:
        heads = ", ".join(
            f"{self.settings.prefix(u)}{self.settings.separator} for {u}" for u in self.settings.upstreams
        )
        return (
            f"Airlock endpoint {self.settings.name}: tool and prompt names begin with their server's prefix ({heads})."
        )

    async def _session(self, exchange: Exchange) -> EndpointSession | None:
        session_id = exchange.headers.get(MCP_SESSION_ID)
        if session_id is None:
            await send_error(
                exchange.send, 400, INVALID_REQUEST, "Bad Request: missing Mcp-Session-Id (initialize first)"
            )
            return None
        session = await exchange.gateway.sessions.get(session_id)
        if session is None or session.agent != exchange.agent or session.upstream != self.settings.name:
            await send_error(exchange.send, 404, INVALID_REQUEST, "Session not found")
            return None
        return session

    async def _handshake_message(self, exchange: Exchange, session: EndpointSession, message: Message) -> None:
        headers = _session_header(session.id)
        if message.kind == "notification" and not (message.method or "").startswith(NOTIFICATION_PREFIX):
            # A request without an id (a `tools/call`, say) could carry no verdict: never passed on.
            await send_error(
                exchange.send,
                400,
                INVALID_REQUEST,
                f"Invalid Request: {message.method} must be a request with an id",
                headers=headers,
            )
            return
        if message.kind != "request":
            await self._to_opened_members(exchange, session, message)
            await send_empty(exchange.send, 202, headers)
            return

        async def ask(upstream: Upstream, method: str, params: JSONObject) -> JSONObject:
            member = await self._members.session_for(exchange.gateway.sessions, session, upstream)
            return await _ask_in_session(exchange.gateway.sessions, upstream, member, method, params)

        async def delegate(routed: Routed, rewritten: Exchange, forwarded: Message) -> None:
            upstream = self._upstreams[routed.upstream]
            try:
                member = await self._members.session_for(exchange.gateway.sessions, session, upstream)
            except (UpstreamUnavailable, MemberRefused) as exc:
                await _unreachable(
                    exchange, message, headers, f"the upstream {routed.upstream!r} is unreachable ({exc})"
                )
                return
            rewritten.send = _with_session_id(rewritten.send, session.id)
            await handshake.serve_in_session(rewritten, member, forwarded)

        await self._request(exchange, message, headers, ask, delegate)

    async def _to_opened_members(self, exchange: Exchange, session: EndpointSession, message: Message) -> None:
        """A notification or an answer to a server request: to every upstream session opened (see the docstring)."""
        sessions = exchange.gateway.sessions
        if message.method == "notifications/initialized":
            return  # Airlock's own handshake: each upstream session had its own
        for upstream, member in await self._members.opened(sessions, session):
            if message.method == "notifications/cancelled":
                await _withdraw(exchange, member, message)
            try:
                await post_upstream(upstream, session_headers(member), message.raw)
            except (UpstreamUnavailable, ResponseTooLarge) as exc:
                logger.warning(
                    "endpoint %s: could not pass a message on to %s: %s", self.settings.name, upstream.name, exc
                )

    # 2026-07-28.

    async def _serve_modern(self, exchange: Exchange, message: Message) -> None:
        if message.kind != "request":
            await send_empty(exchange.send, 202)  # no session to deliver it in: see the docstring
            return
        if message.method == "server/discover":
            await self._discover(exchange, message)
            return
        if message.method in extension.TASK_METHODS and exchange.gateway.tasks is not None:
            # A task is the agent's, not an upstream's: no routing (`app/tasks/extension.py`).
            await extension.serve_task_request(exchange, message)
            return
        task_ids = listen.task_ids_only(message.params) if message.method == "subscriptions/listen" else None
        if task_ids is not None and exchange.gateway.tasks is not None and extension.declares(message.params):
            await listen.serve_listen(exchange, message, task_ids)
            return
        meta = message.params.get("_meta")
        envelope = {"_meta": meta} if isinstance(meta, dict) else {}

        async def ask(upstream: Upstream, method: str, params: JSONObject) -> JSONObject:
            body = {"jsonrpc": "2.0", "id": f"airlock-{method}", "method": method, "params": {**params, **envelope}}
            headers = {**forwardable_headers(exchange.headers), "mcp-method": method}
            headers.pop(MCP_NAME, None)
            return await ask_upstream(upstream, headers, dumps(body))

        async def delegate(routed: Routed, rewritten: Exchange, forwarded: Message) -> None:
            await modern.serve_message(rewritten, forwarded)

        await self._request(exchange, message, (), ask, delegate)

    async def _discover(self, exchange: Exchange, message: Message) -> None:
        """`server/discover`: the endpoint speaks 2026-07-28 only if every reachable upstream does."""
        headers = forwardable_headers(exchange.headers)
        answers = await asyncio.gather(
            *(ask_upstream(self._upstreams[u], headers, exchange.body) for u in self.settings.upstreams),
            return_exceptions=True,
        )
        results: list[JSONObject] = []
        for name, answer in zip(self.settings.upstreams, answers, strict=True):
            if isinstance(answer, MemberRefused):
                text = (
                    f"endpoint {self.settings.name!r} serves upstream {name!r}, which does not speak this "
                    "protocol revision; use the initialize handshake"
                )
                await send_error(exchange.send, 400, INVALID_REQUEST, f"Bad Request: {text}", request_id=message.id)
                return
            if isinstance(answer, BaseException):
                logger.warning("endpoint %s: %s left out of server/discover: %s", self.settings.name, name, answer)
                continue
            results.append(answer)
        answer = result_response(message.id, _discovered(results, self.settings.name, self._instructions()))
        if exchange.gateway.tasks is not None and extension.declares(message.params):
            answer = extension.with_extension(answer)
        await send_json(exchange.send, 200, answer)

    # Both eras.

    async def _request(
        self,
        exchange: Exchange,
        message: Message,
        headers: list[tuple[bytes, bytes]] | tuple[()],
        ask: Ask,
        delegate: Callable[[Routed, Exchange, Message], Awaitable[None]],
    ) -> None:
        method = message.method or ""
        if method in LISTINGS:
            await self._merged_list(exchange, message, LISTINGS[method], headers, ask)
        elif method == "ping":
            await send_json(exchange.send, 200, result_response(message.id, _empty(exchange)), headers)
        elif method in _ROUTED:
            await self._route(exchange, message, headers, delegate)
        elif method == "logging/setLevel":
            await asyncio.gather(
                *(ask(self._upstreams[u], method, dict(message.params)) for u in self.settings.upstreams),
                return_exceptions=True,
            )
            await send_json(exchange.send, 200, result_response(message.id, _empty(exchange)), headers)
        else:
            await send_error(
                exchange.send,
                200,
                METHOD_NOT_FOUND,
                f"Method not found: endpoint {self.settings.name!r} does not serve {method}",
                request_id=message.id,
                headers=headers,
            )

    async def _merged_list(
        self, exchange: Exchange, message: Message, listing: Listing, headers: Any, ask: Ask
    ) -> None:
        try:
            cursor = message.params.get("cursor")
            cursors = (
                decode_cursor(cursor, self.settings.upstreams)
                if cursor is not None
                else dict.fromkeys(self.settings.upstreams, "")
            )
        except BadCursor as exc:
            await send_error(
                exchange.send, 200, INVALID_PARAMS, f"Invalid params: {exc}", request_id=message.id, headers=headers
            )
            return
        members = [u for u in self.settings.upstreams if u in cursors]
        method = message.method or ""
        pages = await asyncio.gather(
            *(ask(self._upstreams[u], method, {"cursor": cursors[u]} if cursors[u] else {}) for u in members),
            return_exceptions=True,
        )
        kept: list[tuple[str, JSONObject]] = []
        for name, page in zip(members, pages, strict=True):
            if isinstance(page, BaseException):
                logger.warning("endpoint %s: %s left out of %s: %s", self.settings.name, name, method, page)
                continue
            if listing.key == "tools":
                page = exchange.gateway.interceptor.filter_tools(self._upstreams[name], page)
            kept.append((name, page))
        result = merge_pages(listing, self.naming, kept, self.settings.name)
        await send_json(exchange.send, 200, result_response(message.id, result), headers)

    async def _route(
        self,
        exchange: Exchange,
        message: Message,
        headers: Any,
        delegate: Callable[[Routed, Exchange, Message], Awaitable[None]],
    ) -> None:
        method = message.method or ""
        field = _ROUTED[method]
        merged = _named(message.params, field)
        routed = None
        if merged is not None:
            uri = _names_a_uri(message.params, field)
            routed = self.naming.route_uri(merged) if uri else self.naming.route_name(merged)
        if merged is None or routed is None or routed.upstream not in self._upstreams:
            await self._refuse_unknown(exchange, message, headers, merged)
            return
        params = _renamed(message.params, field, routed.name)
        forwarded = parse_message(dumps({**message.body, "params": params}))
        rewritten = dataclasses.replace(
            exchange,
            upstream=self._upstreams[routed.upstream],
            body=forwarded.raw,
            headers=_renamed_header(exchange.headers, routed.name),
            raw_headers=[(k, routed.name if k == MCP_NAME else v) for k, v in exchange.raw_headers],
        )
        await delegate(routed, rewritten, forwarded)

    async def _refuse_unknown(self, exchange: Exchange, message: Message, headers: Any, merged: str | None) -> None:
        """A name no upstream's prefix begins: refused as unknown (a tool error for a call), forwarded nowhere."""
        what = "resource" if _names_a_uri(message.params, _ROUTED[message.method or ""]) else "prompt"
        if message.method == "tools/call":
            exchange.gateway.audit.record_call(
                agent=exchange.agent,
                upstream=self.settings.name,
                tool=merged or "",
                decision="invalid",
                rule=None,
                policy_version=None,
                latency_ms=exchange.elapsed_ms(),
                outcome="no upstream of the endpoint has this name",
                arguments=message.params.get("arguments"),
            )
            result = tool_error_result(f"Unknown tool: {merged}", modern=_is_modern(exchange))
            await send_json(exchange.send, 200, result_response(message.id, result), headers)
            return
        await send_error(
            exchange.send,
            200,
            INVALID_PARAMS,
            f"Invalid params: no upstream of endpoint {self.settings.name!r} has the {what} {merged!r}",
            request_id=message.id,
            headers=headers,
        )


_ROUTED: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
    "completion/complete": "ref.name",
}
"""Methods that name one item, and where the name is (`ref.name` also means `ref.uri` for a resource ref)."""


def _is_modern(exchange: Exchange) -> bool:
    version = exchange.protocol_version
    return version is not None and version not in HANDSHAKE_VERSIONS


def _empty(exchange: Exchange) -> JSONObject:
    """An empty result, in the exchange's era (2026-07-28 results say they are complete)."""
    return {"resultType": "complete"} if _is_modern(exchange) else {}


def _names_a_uri(params: JSONObject, field: str) -> bool:
    """Whether what the request names is a resource URI (else a tool or prompt name)."""
    ref = params.get("ref")
    return field == "uri" or (field == "ref.name" and isinstance(ref, dict) and ref.get("type") == "ref/resource")


def _named(params: JSONObject, field: str) -> str | None:
    if field == "ref.name":
        ref = params.get("ref")
        if not isinstance(ref, dict):
            return None
        value = ref.get("uri") if ref.get("type") == "ref/resource" else ref.get("name")
    else:
        value = params.get(field)
    return value if isinstance(value, str) else None


def _renamed(params: JSONObject, field: str, name: str) -> JSONObject:
    if field != "ref.name":
        return {**params, field: name}
    ref = params["ref"]
    key = "uri" if ref.get("type") == "ref/resource" else "name"
    return {**params, "ref": {**ref, key: name}}


def _renamed_header(headers: dict[str, str], name: str) -> dict[str, str]:
    return {**headers, MCP_NAME: name} if MCP_NAME in headers else headers


def _session_header(session_id: str) -> list[tuple[bytes, bytes]]:
    return [(MCP_SESSION_ID.encode(), session_id.encode())]


def _with_session_id(send: Send, session_id: str) -> Send:
    """`send` with the endpoint's session id in place of an upstream session's (the agent knows only the endpoint's)."""
    name = MCP_SESSION_ID.encode()

    async def wrapped(message: AsgiMessage) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != name]
            message = {**message, "headers": [*kept, (name, session_id.encode())]}
        await send(message)

    return wrapped


async def _unreachable(exchange: Exchange, message: Message, headers: Any, text: str) -> None:
    if message.method == "tools/call":
        result = tool_error_result(f"{text[0].upper()}{text[1:]}. The call did not run.")
        await send_json(exchange.send, 200, result_response(message.id, result), headers)
    else:
        await send_error(
            exchange.send, 502, INVALID_REQUEST, f"Bad Gateway: {text}", request_id=message.id, headers=headers
        )


async def _withdraw(exchange: Exchange, member: EndpointSession, message: Message) -> None:
    request_id = message.params.get("requestId")
    if isinstance(request_id, str | int) and not isinstance(request_id, bool):
        await exchange.gateway.approvals.cancel_request(
            member.id, request_id, by=exchange.agent, reason="the client cancelled the request"
        )


async def _ask_in_session(
    sessions: SessionRegistry, upstream: Upstream, member: EndpointSession, method: str, params: JSONObject
) -> JSONObject:
    body = dumps({"jsonrpc": "2.0", "id": f"airlock-{method}", "method": method, "params": params})
    try:
        return await ask_upstream(upstream, session_headers(member), body)
    except MemberRefused as exc:
        if exc.status == 404:
            await sessions.close(member.id)  # the upstream forgot it: the next request opens a new one
        raise


def _discovered(results: list[JSONObject], endpoint: str, instructions: str) -> JSONObject:
    """The endpoint's `server/discover` result: the versions every upstream supports, their capabilities together."""
    versions: list[str] | None = None
    capabilities: JSONObject = {}
    for result in results:
        supported = [v for v in result.get("supportedVersions", []) if isinstance(v, str)]
        versions = supported if versions is None else [v for v in versions if v in supported]
        for key in result.get("capabilities") or {}:
            if key in ("tools", "prompts", "resources", "completions", "logging"):
                capabilities[key] = {}
    return {
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
        "supportedVersions": versions or [],
        "capabilities": capabilities,
        "instructions": instructions,
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": f"{SERVER_NAME}:{endpoint}", "version": "1"}},
    }
