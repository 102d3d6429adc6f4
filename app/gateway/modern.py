"""The 2026-07-28 era: one self-contained POST per request, no sessions, no GET stream.

Before anything is forwarded, a request passes the revision's validation ladder: the per-request
envelope in `params._meta`, the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers
against the body (a routing header sent twice is refused too, since first-copy and last-copy
readers would disagree), and a supported version. The ladder itself is the official SDK's
(`mcp.shared.inbound`), so Airlock and SDK servers give the same answers with the same codes.
`Mcp-Param-*` headers are checked against the arguments too when the tool's input schema is known
(and refused when sent twice, whatever the schema), so no intermediary can route on a value the
policy did not judge.
"""

from __future__ import annotations

from typing import Final

from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)

from app.gateway.calls import CallContext, serve_tool_call
from app.gateway.exchange import Exchange
from app.gateway.judged import serve_judged_request
from app.gateway.relay import Relayed, Transform, relay
from app.gateway.respond import send_error
from app.jsonrpc import HEADER_MISMATCH, INTERNAL_ERROR, INVALID_REQUEST, Message, MessageError, parse_message
from app.policy.requests import JUDGED_METHODS
from app.protocol import MCP_PROTOCOL_VERSION, PARAM_HEADER_PREFIX, Era
from app.tasks import extension, listen
from app.upstream import ResponseTooLarge, UpstreamUnavailable, forwardable_headers

_ENVELOPE_HEADERS: Final = ("accept", "content-type", MCP_PROTOCOL_VERSION)


async def serve(exchange: Exchange) -> None:
    if exchange.method != "POST":
        await send_error(
            exchange.send,
            405,
            INVALID_REQUEST,
            "Method Not Allowed: 2026-07-28 uses POST only",
            headers=[(b"allow", b"POST")],
        )
        return
    message = await admit(exchange)
    if message is not None:
        await serve_message(exchange, message)


async def admit(exchange: Exchange) -> Message | None:
    """The POST's message if it passes the validation ladder; None when a refusal was already sent."""
    try:
        message = parse_message(exchange.body)
    except MessageError as exc:
        await _reject(exchange, exc.code, exc.message, exc.request_id)
        return None
    if message.kind == "response":
        await _reject(
            exchange, INVALID_REQUEST, "Invalid Request: 2026-07-28 clients do not send responses", message.id
        )
        return None
    if message.kind == "request":
        rejection = _ladder(exchange, message)
        if rejection is not None:
            _audit_refused_call(exchange, message, rejection.message)
            await _reject(exchange, rejection.code, rejection.message, message.id, rejection.data)
            return None
    return message


async def serve_message(exchange: Exchange, message: Message) -> None:
    """Serve one admitted message; also how an endpoint reaches a member (`aggregate.py`)."""
    try:
        await _dispatch(exchange, message)
    except MessageError as exc:
        await _reject(exchange, exc.code, exc.message, message.id)
    except UpstreamUnavailable as exc:
        await send_error(exchange.send, 502, INTERNAL_ERROR, f"Bad Gateway: {exc}", request_id=message.id)
    except ResponseTooLarge as exc:
        await send_error(
            exchange.send, 502, INTERNAL_ERROR, f"Bad Gateway: {exc}; it was not relayed", request_id=message.id
        )


def _ladder(exchange: Exchange, message: Message) -> InboundLadderRejection | None:
    duplicated = find_duplicated_routing_header(exchange.raw_headers)
    if duplicated is not None:
        return InboundLadderRejection(code=HEADER_MISMATCH, message=f"{duplicated} header appears more than once")
    verdict = classify_inbound_request(message.body, headers=exchange.headers)
    return verdict if isinstance(verdict, InboundLadderRejection) else None


async def _dispatch(exchange: Exchange, message: Message) -> None:
    interceptor = exchange.gateway.interceptor
    if message.method == "tools/call":
        try:
            _check_param_headers(exchange, message)
        except MessageError as exc:
            _audit_refused_call(exchange, message, exc.message)
            raise
        await serve_tool_call(exchange, message, _call_context(exchange, message))
    elif message.method == "tools/list":
        await _forward(exchange, transform=interceptor.tools_list_filter(exchange.upstream))
    elif message.kind == "request" and message.method in extension.TASK_METHODS and exchange.gateway.tasks is not None:
        await extension.serve_task_request(exchange, message)
    elif (
        message.method == "subscriptions/listen"
        and _offers_tasks(exchange, message)
        and _listens_to_tasks_only(message)
    ):
        await listen.serve_listen(exchange, message, listen.task_ids_only(message.params) or [])
    elif message.method == "server/discover" and _offers_tasks(exchange, message):
        await _forward(exchange, transform=extension.with_extension)
    elif message.kind == "request" and message.method in JUDGED_METHODS:
        await serve_judged_request(exchange, message, lambda: _forward(exchange, inspect=True))
    else:
        await _forward(exchange)


def _check_param_headers(exchange: Exchange, message: Message) -> None:
    duplicated = _duplicated_param_header(exchange.raw_headers)
    if duplicated is not None:
        # As for the routing headers: a first-copy reader in front of Airlock would route on a value
        # the policy never judged. The SDK's validator cannot see this: it is given folded headers.
        raise MessageError(HEADER_MISMATCH, f"{duplicated} header appears more than once", message.id)
    name = message.params.get("name")
    schema = exchange.upstream.catalog.input_schemas.get(name) if isinstance(name, str) else None
    arguments = message.params.get("arguments")
    if schema is None or not isinstance(arguments, dict) or name in exchange.upstream.catalog.header_free:
        return
    rejection = validate_mcp_param_headers(schema, arguments, exchange.headers)
    if rejection is not None:
        raise MessageError(rejection.code, rejection.message, message.id)


def _audit_refused_call(exchange: Exchange, message: Message, reason: str) -> None:
    """Audit a `tools/call` the validation ladder refused (decision `invalid`): it never reached the policy."""
    if message.method != "tools/call":
        return
    name = message.params.get("name")
    exchange.gateway.audit.record_call(
        agent=exchange.agent,
        upstream=exchange.upstream.name,
        tool=name if isinstance(name, str) else "",
        decision="invalid",
        rule=None,
        policy_version=None,
        latency_ms=exchange.elapsed_ms(),
        outcome=reason[:500],
        arguments=message.params.get("arguments"),
    )


def _duplicated_param_header(raw_headers: list[tuple[str, str]]) -> str | None:
    names = [name for name, _ in raw_headers if name.startswith(PARAM_HEADER_PREFIX)]
    return next((name for index, name in enumerate(names) if name in names[:index]), None)


def _call_context(exchange: Exchange, message: Message) -> CallContext:
    upstream = exchange.upstream

    async def fetch_catalog() -> None:
        envelope: dict[str, str] = {k: exchange.headers[k] for k in _ENVELOPE_HEADERS if k in exchange.headers}
        await upstream.fetch_catalog(envelope, _envelope_meta(message) or None, None)

    return CallContext(
        era=Era.MODERN,
        protocol_version=exchange.headers.get(MCP_PROTOCOL_VERSION, ""),
        session_id=None,
        response_headers=(),
        forward=lambda inspect: _forward(exchange, inspect=inspect),
        fetch_catalog=fetch_catalog,
        resumable=False,
        modern_tasks=_offers_tasks(exchange, message),
    )


def _listens_to_tasks_only(message: Message) -> bool:
    """Whether this `subscriptions/listen` asks for task notifications only (`app/tasks/listen.py`)."""
    return message.kind == "request" and listen.task_ids_only(message.params) is not None


def _offers_tasks(exchange: Exchange, message: Message) -> bool:
    """Whether this request gets the tasks extension: it declares it, and tasks are on (`app/tasks/extension.py`)."""
    return exchange.gateway.tasks is not None and extension.declares(message.params)


def _envelope_meta(message: Message) -> dict[str, object]:
    """The per-request envelope (`_meta` protocol keys) to reuse on Airlock's own upstream requests."""
    meta = message.params.get("_meta")
    if not isinstance(meta, dict):
        return {}
    return {k: v for k, v in meta.items() if k.startswith("io.modelcontextprotocol/")}


async def _forward(exchange: Exchange, *, inspect: bool = False, transform: Transform | None = None) -> Relayed:
    async with exchange.upstream.request(
        "POST", headers=forwardable_headers(exchange.headers), body=exchange.body
    ) as response:
        return await relay(exchange, response, transform=transform, inspect=inspect)


async def _reject(exchange: Exchange, code: int, message: str, request_id: object, data: object = None) -> None:
    status = ERROR_CODE_HTTP_STATUS.get(code, 400)
    await send_error(
        exchange.send,
        status,
        code,
        message,
        request_id=request_id if isinstance(request_id, str | int) else None,
        data=data,
    )
