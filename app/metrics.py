"""Prometheus metrics at `GET /metrics` (`[metrics] enabled`, default true), one registry per app,
on the main listener or on one of its own (`[metrics] listen`).

Instruments (labels are bounded: no argument values, approval ids or agent names):

- `airlock_tool_calls_total{upstream,tool,decision,outcome}`: every `tools/call` decision, counted
  where it is audited (`AuditLog.record_call`), so each decision once. `tool` is the name the agent
  sent: after `MAX_TOOLS` distinct names (all upstreams together) further ones count as `other`.
  `outcome` is folded to a fixed vocabulary (`error -32602` → `error`, `HTTP 502` → `http`, an
  unknown wording → `other`).
- `airlock_request_seconds{upstream,decision}`: the time from the request's arrival to its
  decision's audit entry, upstream time included (a forwarded call: until the answer was relayed;
  a parked call: until it was parked, not the human's wait). The gateway's own share is not
  separated from the upstream's here.
- `airlock_approvals_total{upstream,status}`: approvals reaching a final status, counted after the
  transaction that moved them committed, by the process that moved them.
- `airlock_approvals_pending`: pending approvals in the database (all replicas), one COUNT per scrape.
- `airlock_held_requests`: requests this process holds open for approval.
- `airlock_policy_reloads_total{upstream,result}`: policy file reloads, `ok` or `failed` (a broken
  file is counted once per distinct content, as it is logged).
- `airlock_upstream_seconds{upstream}` and `airlock_gateway_seconds{upstream}`: a forwarded call's
  time split in two: from sending it upstream to the end of the relayed answer, and the rest
  (authentication, parsing, policy, Airlock's own work before and after).
- `airlock_upstream_errors_total{upstream,kind}`: calls the upstream did not answer with a result
  (`unreachable`, `http` status, JSON-RPC `error`, `too_large`), from the same audited outcomes.
- `airlock_approval_decision_seconds{upstream,verdict}`: from park to a reviewer's decision.
- `airlock_approval_result_seconds{upstream,status}`: from the decision to the stored result of the
  approved call's one execution (`completed`, `failed`, `outcome_unknown`).
- `airlock_outbox_pending{channel}` and `airlock_outbox_failing{channel}`: Slack and webhook
  deliveries not yet settled, and those among them whose last attempt failed (all replicas, one
  query per channel per scrape).
- `airlock_database_errors_total`: errors the database driver raised (SQLAlchemy's `handle_error`
  event), whatever the caller did with them.

A per-app `CollectorRegistry`, not the global one: tests build many apps in one process. The
hot path is one dictionary lookup and two pre-resolved label children per call.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import Table, event, func, select
from starlette.requests import Request
from starlette.responses import Response

from app.store.db import Database
from app.store.models import approvals, slack_outbox, webhook_outbox

MAX_TOOLS: Final = 500
_MAX_TOOL_LENGTH: Final = 128
_OUTCOMES: Final = frozenset(
    {
        "ok",
        "tool error",
        "refused",
        "parked",
        "attached",
        "replayed",
        "upstream unreachable",
        "result too large",
        "too many held",
        "too many pending",
        "client disconnected",
    }
)
_GATEWAY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
"""Airlock's own share of an allowed call is a fraction of a millisecond when all is well."""
_WAIT_BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)
"""A human's decision takes seconds to hours."""
_LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


_UPSTREAM_ERRORS: Final = {
    "upstream unreachable": "unreachable",
    "result too large": "too_large",
    "http": "http",
    "error": "error",
}
_OUTBOXES: Final[dict[str, Table]] = {"slack": slack_outbox, "webhook": webhook_outbox}


def outcome_label(decision: str, outcome: str | None) -> str:
    """An audit outcome folded to a bounded vocabulary."""
    if decision == "invalid":
        return "invalid"  # the outcome is the parse error's text
    if outcome is None:
        return "none"
    if outcome in _OUTCOMES:
        return outcome
    if outcome.startswith("continues "):
        return "continues"
    if outcome.startswith("error "):
        return "error"
    if outcome.startswith("HTTP "):
        return "http"
    return "other"


class Metrics:
    """The instruments of one Airlock app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._calls = Counter(
            "airlock_tool_calls",
            "tools/call decisions, by upstream, tool, decision and outcome",
            ["upstream", "tool", "decision", "outcome"],
            registry=self.registry,
        )
        self._seconds = Histogram(
            "airlock_request_seconds",
            "Seconds from a tools/call's arrival to its decision's audit entry "
            "(upstream time included; a parked call until it was parked)",
            ["upstream", "decision"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._approvals = Counter(
            "airlock_approvals", "Approvals that reached a final status", ["upstream", "status"], registry=self.registry
        )
        self._reloads = Counter(
            "airlock_policy_reloads",
            "Policy file reloads, ok or failed",
            ["upstream", "result"],
            registry=self.registry,
        )
        self._pending = Gauge(
            "airlock_approvals_pending", "Pending approvals in the database (all replicas)", registry=self.registry
        )
        self._held = Gauge(
            "airlock_held_requests", "Requests this process holds open for approval", registry=self.registry
        )
        self._upstream_errors = Counter(
            "airlock_upstream_errors",
            "Calls the upstream did not answer with a result, by kind",
            ["upstream", "kind"],
            registry=self.registry,
        )
        self._decision_seconds = Histogram(
            "airlock_approval_decision_seconds",
            "Seconds from park to a reviewer's decision",
            ["upstream", "verdict"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._result_seconds = Histogram(
            "airlock_approval_result_seconds",
            "Seconds from the decision to the stored result of the approved call",
            ["upstream", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._outbox_pending = Gauge(
            "airlock_outbox_pending",
            "Channel deliveries not yet settled (all replicas)",
            ["channel"],
            registry=self.registry,
        )
        self._outbox_failing = Gauge(
            "airlock_outbox_failing",
            "Unsettled channel deliveries whose last attempt failed (all replicas)",
            ["channel"],
            registry=self.registry,
        )
        self._database_errors = Counter(
            "airlock_database_errors", "Errors the database driver raised", registry=self.registry
        )
        self._upstream_seconds = Histogram(
            "airlock_upstream_seconds",
            "Seconds of a forwarded call spent on the upstream's request and the relay of its answer",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._gateway_seconds = Histogram(
            "airlock_gateway_seconds",
            "Seconds a forwarded call spent in Airlock itself (its whole time minus the upstream's)",
            ["upstream"],
            buckets=_GATEWAY_BUCKETS,
            registry=self.registry,
        )
        self._split: dict[str, tuple[Histogram, Histogram]] = {}
        self._children: dict[tuple[str, str, str, str | None], tuple[Counter, Histogram, Counter | None]] = {}
        self._tools: set[str] = set()

    def call(
        self,
        upstream: str,
        tool: str,
        decision: str,
        outcome: str | None,
        latency_ms: float | None,
        upstream_ms: float | None = None,
    ) -> None:
        """Count one audited call decision (never raises for odd values)."""
        key = (upstream, tool, decision, outcome)
        children = self._children.get(key)
        if children is None:
            children = self._resolve(key)
        children[0].inc()
        if latency_ms is not None:
            children[1].observe(latency_ms / 1000)
            if upstream_ms is not None:
                split = self._split.get(upstream)
                if split is None:
                    split = self._split[upstream] = (
                        self._upstream_seconds.labels(upstream),
                        self._gateway_seconds.labels(upstream),
                    )
                split[0].observe(upstream_ms / 1000)
                split[1].observe(max(latency_ms - upstream_ms, 0.0) / 1000)
        if children[2] is not None:
            children[2].inc()

    def _resolve(self, key: tuple[str, str, str, str | None]) -> tuple[Counter, Histogram, Counter | None]:
        upstream, tool, decision, outcome = key
        tool_label = tool[:_MAX_TOOL_LENGTH]
        if tool_label not in self._tools:
            if len(self._tools) >= MAX_TOOLS:
                tool_label = "other"
            else:
                self._tools.add(tool_label)
        label = outcome_label(decision, outcome)
        error_kind = _UPSTREAM_ERRORS.get(label) if decision in ("allow", "approve") else None
        children = (
            self._calls.labels(upstream, tool_label, decision, label),
            self._seconds.labels(upstream, decision),
            None if error_kind is None else self._upstream_errors.labels(upstream, error_kind),
        )
        if tool_label == tool and (outcome is None or outcome in _OUTCOMES):
            self._children[key] = children  # only bounded keys: free text (a long name, an error) is not cached
        return children

    def approval_finished(self, upstream: str, status: str) -> None:
        self._approvals.labels(upstream, status).inc()

    def approval_decided(self, upstream: str, verdict: str, seconds: float) -> None:
        self._decision_seconds.labels(upstream, verdict).observe(max(seconds, 0.0))

    def approval_result(self, upstream: str, status: str, seconds: float) -> None:
        self._result_seconds.labels(upstream, status).observe(max(seconds, 0.0))

    def watch_database(self, db: Database) -> None:
        """Count every error the database driver raises on `db`'s engine."""
        event.listen(db.engine.sync_engine, "handle_error", lambda _context: self._database_errors.inc())

    def policy_reloaded(self, upstream: str, ok: bool) -> None:
        self._reloads.labels(upstream, "ok" if ok else "failed").inc()

    def watch_held(self, total: Callable[[], int]) -> None:
        """Read `airlock_held_requests` from `total()` at each scrape."""
        self._held.set_function(lambda: float(total()))

    async def render(self, db: Database) -> bytes:
        """The exposition text: the gauges read from the database first (a few COUNTs), then the registry."""
        async with db.read() as conn:
            pending = (
                await conn.execute(select(func.count()).select_from(approvals).where(approvals.c.status == "pending"))
            ).scalar_one()
            for channel, table in _OUTBOXES.items():
                waiting, failing = (
                    await conn.execute(
                        select(func.count(), func.count(table.c.last_error)).where(table.c.settled.is_(False))
                    )
                ).one()
                self._outbox_pending.labels(channel).set(waiting)
                self._outbox_failing.labels(channel).set(failing)
        self._pending.set(pending)
        return generate_latest(self.registry)

    def route(self, db: Database) -> Callable[[Request], Awaitable[Response]]:
        """The `/metrics` handler of the main listener."""

        async def metrics(_request: Request) -> Response:
            return Response(await self.render(db), media_type=CONTENT_TYPE_LATEST)

        return metrics

    @asynccontextmanager
    async def listener(self, db: Database, address: tuple[str, int], sock: socket.socket | None) -> AsyncIterator[None]:
        """Serve `GET /metrics` on a listener of its own (`[metrics] listen`) while inside.

        aiohttp's server, not a second uvicorn: uvicorn's `serve()` takes over the process's
        signal handlers, which belong to the main server (its SIGTERM drain). `sock` is the socket
        `airlock serve` bound before starting, so a taken port was one line; else bind `address`.
        """

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=await self.render(db), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, *address)
        try:
            await site.start()
            yield
        finally:
            await runner.cleanup()
