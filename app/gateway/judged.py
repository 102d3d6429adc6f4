"""Serve a request that reads or acts without being a `tools/call`: judge it, audit it, then forward or refuse.

`resources/read`, `resources/subscribe`, `prompts/get`, `completion/complete` and
`logging/setLevel` are judged by the upstream's policy (`requests` rules, `app/policy/requests.py`)
and every one is audited (its method in the entry's `detail`, what it names in `tool`), whichever
era carried it. A denied request gets a JSON-RPC error naming the reason and never reaches the
upstream. Both era modules call this, with their own way to forward.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.gateway.exchange import Exchange
from app.gateway.relay import Relayed
from app.gateway.respond import Headers, send_error
from app.jsonrpc import INVALID_REQUEST, Message
from app.policy.engine import Decision
from app.policy.requests import target_of


async def serve_judged_request(
    exchange: Exchange, message: Message, forward: Callable[[], Awaitable[Relayed]], headers: Headers = ()
) -> None:
    method = message.method or ""
    target = target_of(method, message.params)
    gateway = exchange.gateway
    decision, policy = gateway.interceptor.judge_request(exchange.upstream, exchange.agent, method, target)

    def audit(outcome: str) -> None:
        gateway.audit.record_call(
            agent=exchange.agent,
            upstream=exchange.upstream.name,
            tool=target or "",
            decision=decision.action,
            rule=decision.rule_id or decision.rule,
            policy_version=policy.version,
            latency_ms=exchange.elapsed_ms(),
            outcome=outcome,
            arguments=None,
            detail=method,
        )

    if decision.action != "allow":
        audit("refused")
        await send_error(
            exchange.send,
            200,
            INVALID_REQUEST,
            denial_text(method, target, decision),
            request_id=message.id,
            headers=headers,
        )
        return
    relayed = await forward()
    audit(relayed.outcome())


def denial_text(method: str, target: str | None, decision: Decision) -> str:
    what = f"{method} of {target}" if target is not None else method
    why = decision.reason or f"the policy denies it ({decision.rule})"
    return f"Airlock policy denied {what}: {why}. It was not sent to the server; do not retry it unchanged."
