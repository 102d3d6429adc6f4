"""Serve one `tools/call`, the same way in both protocol eras: judge it, then forward, refuse or park.

The era modules supply what differs between them (`CallContext`): how to forward, how to ask the
upstream for its tools, which session, whether the stream can be resumed. Everything else, the
verdict, the refusal result, parking, holding and the audit entry, happens here once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.approvals.outcomes import too_large_text
from app.approvals.service import Attachment, ParkRequest, TooManyPending, continuation_of
from app.approvals.wording import granted_call
from app.gateway.exchange import Exchange
from app.gateway.holding import HeldRequest
from app.gateway.intercept import Verdict
from app.gateway.limits import TooManyHeld
from app.gateway.relay import Relayed
from app.gateway.respond import Headers, send_json
from app.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    Message,
    MessageError,
    ToolCall,
    arguments_hash,
    member_text,
    result_response,
    tool_call_of,
    tool_error_result,
)
from app.logs import bind
from app.protocol import Era
from app.tasks import extension
from app.tasks import handlers as tasks
from app.tasks.model import TaskRequest, requested_task
from app.upstream import ResponseTooLarge, UpstreamUnavailable, forwardable_headers


@dataclass(frozen=True)
class CallContext:
    era: Era
    protocol_version: str
    session_id: str | None
    response_headers: Headers
    forward: Callable[[bool], Awaitable[Relayed]]
    """Forward the request upstream and relay the answer (`True`: inspect the final message)."""
    fetch_catalog: Callable[[], Awaitable[None]]
    resumable: bool
    """Whether the held stream gets event ids and a priming event (handshake era, 2025-11-25+)."""
    tasks: bool = False
    """Whether a call with `params.task` gets an MCP task (handshake era, 2025-11-25+; `app/tasks/`)."""
    upstream_session_id: str | None = None
    modern_tasks: bool = False
    """Whether a parked call is answered with a 2026-07-28 task handle (the request declares
    `io.modelcontextprotocol/tasks`; `app/tasks/extension.py`)."""


async def serve_tool_call(exchange: Exchange, message: Message, context: CallContext) -> None:
    """Answer a `tools/call`. Raises `MessageError` for an invalid one (the era module answers it)."""
    call = _call_to_judge(exchange, message)
    task = requested_task(message.params) if context.tasks else None
    gateway = exchange.gateway
    verdict = await gateway.interceptor.judge(exchange.upstream, exchange.agent, call, context.fetch_catalog)
    bind(tool=call.name, decision=verdict.audit_decision)
    audit = gateway.audit
    common = _audit_fields(exchange, call, verdict)
    if verdict.action == "forward" and task is not None:
        task_id = await tasks.serve_allowed(
            exchange,
            message,
            context.response_headers,
            task,
            tool=call.name,
            upstream_session_id=context.upstream_session_id,
        )
        audit.record_call(decision="allow", latency_ms=exchange.elapsed_ms(), outcome=f"task {task_id}", **common)
        return
    if verdict.action == "forward":
        await _forward_allowed(exchange, message, context, call, common)
        return
    if verdict.action == "refuse":
        assert verdict.text is not None
        await _refuse(exchange, message, context, verdict.text, task)
        audit.record_call(
            decision=verdict.audit_decision, latency_ms=exchange.elapsed_ms(), outcome="refused", **common
        )
        return
    if task is None and verdict.decision.grants is not None:
        # Only an approve rule that offers grants costs this lookup (app/approvals/grants.py).
        args_hash = arguments_hash(call.arguments)
        grant = await gateway.approvals.covering_grant(
            agent=exchange.agent,
            upstream=exchange.upstream.name,
            tool=call.name,
            args_hash=args_hash,
            rule=verdict.decision.rule_id or verdict.decision.rule,
        )
        if grant is not None:
            # Forwarded as an allowed call, audited with the grant and the approval that made it.
            bind(decision="allow", grant_id=grant.id)
            detail = granted_call(grant_id=grant.id, approval_id=grant.approval_id, created_by=grant.created_by)
            fields = {**common, "approval_id": grant.approval_id, "detail": detail}
            await _forward_allowed(exchange, message, context, call, fields)
            return
    await _park(exchange, message, context, verdict, call, task)


def _audit_fields(exchange: Exchange, call: ToolCall, verdict: Verdict) -> dict[str, Any]:
    """What every audit entry of a judged call says about it."""
    return {
        "agent": exchange.agent,
        "upstream": exchange.upstream.name,
        "tool": call.name,
        "rule": verdict.decision.rule_id or verdict.decision.rule,
        "policy_version": verdict.policy.version,
        "arguments": call.arguments,
    }


def _call_to_judge(exchange: Exchange, message: Message) -> ToolCall:
    """The call in `message`. An invalid one is audited (decision `invalid`), then raised as `MessageError`."""
    try:
        if message.kind != "request":
            # A notification gets no answer, so it could carry no verdict: refused, never forwarded.
            raise MessageError(INVALID_REQUEST, "Invalid Request: tools/call must be a request with an id")
        return tool_call_of(message)
    except MessageError as exc:
        name = message.params.get("name")
        exchange.gateway.audit.record_call(
            agent=exchange.agent,
            upstream=exchange.upstream.name,
            tool=name if isinstance(name, str) else "",
            decision="invalid",
            rule=None,
            policy_version=None,
            latency_ms=exchange.elapsed_ms(),
            outcome=exc.message,
            arguments=message.params.get("arguments"),
        )
        raise


async def _forward_allowed(
    exchange: Exchange, message: Message, context: CallContext, call: ToolCall, fields: dict[str, Any]
) -> None:
    """Forward an allowed (or granted) call, relay the upstream's answer, and audit it with `fields`."""
    audit = exchange.gateway.audit
    sent = time.perf_counter()
    try:
        relayed = await context.forward(True)
    except UpstreamUnavailable as exc:
        await _refuse(exchange, message, context, f"The upstream server is unreachable ({exc}). The call did not run.")
        audit.record_call(decision="allow", latency_ms=exchange.elapsed_ms(), outcome="upstream unreachable", **fields)
        return
    except ResponseTooLarge as exc:
        await _refuse(exchange, message, context, too_large_text(call.name, exc.size, exc.limit))
        audit.record_call(decision="allow", latency_ms=exchange.elapsed_ms(), outcome="result too large", **fields)
        return
    upstream_ms = (time.perf_counter() - sent) * 1000.0
    audit.record_call(
        decision="allow", latency_ms=exchange.elapsed_ms(), upstream_ms=upstream_ms, outcome=relayed.outcome(), **fields
    )


async def _refuse(
    exchange: Exchange, message: Message, context: CallContext, text: str, task: TaskRequest | None = None
) -> None:
    """The refusal as a tool error result, or as a failed task for a task-augmented call."""
    if task is not None:
        await tasks.refuse(exchange, message, context.response_headers, task, text)
        return
    result = tool_error_result(text, modern=context.era.is_modern)
    await send_json(exchange.send, 200, result_response(message.id, result), context.response_headers)


async def _park(
    exchange: Exchange,
    message: Message,
    context: CallContext,
    verdict: Verdict,
    call: ToolCall,
    task: TaskRequest | None = None,
) -> None:
    """Park and hold the call, if the agent has a held-request slot left (released however the hold ends)."""
    try:
        slot = exchange.gateway.held.acquire(exchange.agent)
    except TooManyHeld as exc:
        text = (
            f"This call to {call.name} needs a human's approval, but {exc} waiting for approval. "
            "It did not run; wait for one of them to finish, then call again."
        )
        await _refuse(exchange, message, context, text, task)
        exchange.gateway.audit.record_call(
            decision="approve",
            latency_ms=exchange.elapsed_ms(),
            outcome="too many held",
            **_audit_fields(exchange, call, verdict),
        )
        return
    with slot:
        await _park_and_hold(exchange, message, context, verdict, call, task)


async def _park_and_hold(
    exchange: Exchange,
    message: Message,
    context: CallContext,
    verdict: Verdict,
    call: ToolCall,
    task: TaskRequest | None = None,
) -> None:
    gateway = exchange.gateway
    params_text: str | None
    if context.modern_tasks:
        params_text = extension.params_for_upstream(message)
    elif task is not None:
        params_text = tasks.params_for_upstream(message)
    else:
        params_text = member_text(message.raw, "params")
    if params_text is None or message.id is None:
        raise MessageError(INVALID_PARAMS, "Invalid params: tools/call needs params", message.id)
    request = ParkRequest(
        upstream=exchange.upstream.name,
        tool=call.name,
        agent=exchange.agent,
        arguments=call.arguments,
        args_hash=arguments_hash(call.arguments),
        params_text=params_text,
        forward_headers=forwardable_headers(exchange.headers),
        era=context.era,
        protocol_version=context.protocol_version,
        session_id=context.session_id,
        request_id=message.id,
        progress_token=call.progress_token,
        decision=verdict.decision,
        policy_version=verdict.policy.version,
        hold_seconds=gateway.hold_seconds(exchange.agent, verdict.decision),
        continuation=continuation_of(message.params) if context.era.is_modern else None,
    )
    common = _audit_fields(exchange, call, verdict)
    try:
        attachment = await gateway.approvals.park(request, priming=context.resumable)
    except TooManyPending as exc:
        text = (
            f"This call to {call.name} needs a human's approval, but you already have {exc.limit} calls "
            "waiting for review. It did not run; wait for those to be decided first."
        )
        await _refuse(exchange, message, context, text, task)
        gateway.audit.record_call(
            decision="approve", latency_ms=exchange.elapsed_ms(), outcome="too many pending", **common
        )
        return
    bind(approval_id=attachment.approval.id)
    gateway.audit.record_call(
        decision="approve",
        latency_ms=exchange.elapsed_ms(),
        outcome=_parked_outcome(attachment),
        approval_id=attachment.approval.id,
        **common,
    )
    if task is not None:
        await tasks.answer_held(exchange, message, context.response_headers, attachment, task)
        return
    if context.modern_tasks:
        await extension.answer_held(exchange, message, context.response_headers, attachment)
        return
    hold = gateway.approvals.hold(attachment, resumable=context.resumable)
    await HeldRequest(exchange, hold, headers=context.response_headers).serve()


def _parked_outcome(attachment: Attachment) -> str:
    if attachment.replayed:
        return "replayed"
    if not attachment.created:
        return "attached"
    return "parked" if attachment.approval.continues is None else f"continues {attachment.approval.continues}"
