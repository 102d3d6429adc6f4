"""The composition root: the one module that builds Airlock's parts from `Settings` and wires them.

Every component is handed the narrow collaborators it uses, never the root itself: the reviewer
channels and optional features (`app/extension.py`: the log channel, Slack, the inbox) get the
approvals service, the notifier and their own settings; the HTTP routes get what they read. Nothing
outside the entry points (`app/asgi.py`, `app/cli.py`) imports this module
(`tests/test_architecture.py` keeps it so).

Two builders, one wiring:

- `build_core(settings)`: the parts every entry point shares, the database, credentials, the audit
  log, the notifier, the approvals ledger and the reviewers' part of the approvals service
  (`ApprovalDesk`). `airlock serve` builds them through `Runtime`; the CLI's commands build them
  alone, so a decision made from the CLI honours the same settings
  (`[audit] store_arguments`) and wakes the same gateways (NOTIFY on PostgreSQL).
- `Runtime(settings)`: the core plus what the serving process adds (policies, upstreams, the
  gateway's parts (`app/gateway/exchange.py::Gateway`), the approval sweeper, the extensions), and
  the one `Approvals` (`app/approvals/service.py`) the gateway, the API and the channels share.

`Runtime.run()` is entered once from the Starlette lifespan: it opens the upstream connection
pool, then supervises the background work (policy reloader, audit writer, approval sweeper,
cross-replica wake-ups, session janitor) until shutdown, when it cancels them, writes what the
audit log still holds, and disposes the engine. Nothing here is created at import time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from app import inbox, slack, tracing, webhook
from app.approvals.channels import ChannelFanout, LogChannel, ReviewChannel
from app.approvals.escalation import check_targets
from app.approvals.executor import Executor
from app.approvals.ledger import Ledger
from app.approvals.queue import ApprovalQueue
from app.approvals.service import ApprovalDesk, Approvals
from app.approvals.signals import Notifier, notifier_for
from app.approvals.sweeper import Sweeper
from app.audit import AuditLog
from app.auth import Credentials
from app.config import Settings
from app.drain import Drain
from app.extension import ChannelExtension, Extension
from app.gateway.exchange import Gateway
from app.gateway.intercept import Interceptor
from app.gateway.limits import HeldLimits
from app.metrics import Metrics
from app.oauth.resource_server import ResourceServer
from app.policy.ratelimit import RateLimiter
from app.policy.reloader import PolicyReloader
from app.sessions import SessionRegistry
from app.stdio.bridge import StdioBridge
from app.store.db import Database
from app.tasks.service import Tasks
from app.upstream import Upstream, new_client_session

logger = logging.getLogger("airlock")


@dataclass(frozen=True)
class Core:
    """The parts every entry point shares; see `build_core`."""

    db: Database
    credentials: Credentials
    audit: AuditLog
    notifier: Notifier
    ledger: Ledger
    desk: ApprovalDesk
    """The approvals service as reviewer channels use it (read, search, decide), for the CLI; the
    serving process hands its channels the whole `Approvals` instead."""


def build_core(settings: Settings, *, channels: ChannelFanout | None = None, metrics: Metrics | None = None) -> Core:
    """The database, credentials, audit log, notifier, approvals ledger and desk, as `settings` configure them.

    Args:
        settings: the process's settings.
        channels: the reviewer channels the ledger tells of every change; none when omitted (the
            CLI: the serving processes hear of its decisions through the notifier).
        metrics: where the audit log and the ledger count, if metrics are enabled.

    Returns:
        The parts; the caller owns their lifecycle (`Runtime.run()`, or the CLI command) and
        disposes `db` at the end.
    """
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    audit = AuditLog(db, store_arguments=settings.audit_store_arguments, metrics=metrics)
    notifier = notifier_for(db)
    ledger = Ledger(db, notifier, channels if channels is not None else ChannelFanout([]), audit, metrics)
    return Core(
        db=db,
        credentials=Credentials(db, cache_seconds=settings.token_cache_seconds),
        audit=audit,
        notifier=notifier,
        ledger=ledger,
        desk=ApprovalDesk(ledger, groups=settings.reviewer_groups),
    )


class Runtime:
    """The serving process's parts, built from `Settings`; `run()` owns their lifecycle.

    The attributes are the parts themselves, for `create_app` to mount and for tests to observe;
    no part receives the runtime.
    """

    def __init__(self, settings: Settings, *, channels: Sequence[ReviewChannel] = ()) -> None:
        self.settings = settings
        self.oauth = ResourceServer(settings.oauth, settings.public_url) if settings.oauth is not None else None
        self.metrics = Metrics() if settings.metrics.enabled else None
        self.channels = ChannelFanout([])
        core = build_core(settings, channels=self.channels, metrics=self.metrics)
        self.db = core.db
        self.credentials = core.credentials
        self.audit = core.audit
        self.notifier = core.notifier
        self.ledger = core.ledger
        self.policies = PolicyReloader({u.name: u.policy for u in settings.upstreams})
        check_targets(self.policies, [u.name for u in settings.upstreams], settings.escalation)
        self.queue = ApprovalQueue(self.ledger, settings.approvals)
        self.upstreams: dict[str, Upstream] = {}
        self.sessions = SessionRegistry(self.db, settings.sessions, self.upstreams)
        self.held = HeldLimits(settings.approvals.max_held_per_agent)
        self.drain = Drain()
        self.metrics_socket: socket.socket | None = None
        """The `[metrics] listen` socket, when `airlock serve` bound it before starting."""
        if self.metrics is not None:
            self._watch(self.metrics)
        self.interceptor = Interceptor(self.policies, RateLimiter(self.db))
        self.traces = tracing.build(settings.tracing)
        self.executor = Executor(
            self.ledger,
            self.upstreams,
            self.sessions,
            lease_seconds=settings.approvals.execution_lease_seconds,
            traces=self.traces,
        )
        self.sweeper = Sweeper(
            self.ledger,
            self.queue,
            self.executor,
            settings.approvals,
            audit_retention_days=settings.audit_retention_days,
        )
        self.approvals = Approvals(
            self.ledger,
            self.queue,
            self.executor,
            self.sweeper,
            settings.approvals,
            public_url=settings.public_url,
            groups=settings.reviewer_groups,
            traces=self.traces,
        )
        self.tasks = Tasks(self.db, self.approvals, settings.tasks, settings.approvals, public_url=settings.public_url)
        self.gateway = self._build_gateway()
        self._http: aiohttp.ClientSession | None = None
        self.stdio = StdioBridge(settings.upstreams, max_line_bytes=settings.max_response_bytes)
        self._started = False
        self.extensions = self._build_extensions(channels)

    def _watch(self, metrics: Metrics) -> None:
        metrics.watch_held(self.held.total)
        metrics.watch_database(self.db)
        self.policies.add_listener(lambda upstream, _policy: metrics.policy_reloaded(upstream, True))
        self.policies.add_failure_listener(lambda upstream, _problem: metrics.policy_reloaded(upstream, False))

    def _build_gateway(self) -> Gateway:
        """What `/mcp/{upstream}` uses (`app/gateway/exchange.py`)."""
        return Gateway(
            settings=self.settings,
            interceptor=self.interceptor,
            audit=self.audit,
            held=self.held,
            sessions=self.sessions,
            approvals=self.approvals,
            drain=self.drain,
            tasks=self.tasks,
        )

    def _build_extensions(self, channels: Sequence[ReviewChannel]) -> list[Extension]:
        """The log channel, any `channels` given, then each configured feature, in the fan-out's order."""
        settings = self.settings
        built: list[Extension | None] = [
            ChannelExtension(LogChannel(settings.public_url)),
            *(ChannelExtension(channel) for channel in channels),
            slack.build(
                settings.slack,
                public_url=settings.public_url,
                db=self.db,
                approvals=self.approvals,
                notifier=self.notifier,
                escalation_channels={
                    name: target.slack_channel for name, target in settings.escalation.items() if target.slack_channel
                },
            ),
            webhook.build(
                settings.webhook,
                public_url=settings.public_url,
                db=self.db,
                approvals=self.approvals,
                notifier=self.notifier,
                escalation_targets=frozenset(name for name, target in settings.escalation.items() if target.webhook),
            ),
            inbox.build(
                public_url=settings.public_url,
                secret_key=settings.secret_key,
                db=self.db,
                approvals=self.approvals,
                notifier=self.notifier,
                credentials=self.credentials,
                upstreams=self.upstreams,
                oidc=settings.inbox_oidc,
            ),
        ]
        extensions = [extension for extension in built if extension is not None]
        for extension in extensions:
            self.channels.channels.extend(extension.channels)
        return extensions

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Runtime]:
        if self._started:
            raise RuntimeError("Runtime.run() can only be entered once")
        self._started = True
        self._http = new_client_session()
        await self.stdio.start()
        for upstream in self.settings.upstreams:
            self.upstreams[upstream.name] = Upstream(
                self.stdio.point(upstream), self._http, max_response_bytes=self.settings.max_response_bytes
            )
        tasks = [
            asyncio.create_task(coroutine, name=name)
            for name, coroutine in (
                ("policy-reloader", self.policies.run()),
                ("audit-writer", self.audit.run()),
                ("approval-sweeper", self.sweeper.run()),
                ("approval-signals", self.notifier.run()),
                ("session-janitor", self.sessions.run()),
                ("task-janitor", self.tasks.run()),
                *((f"extension-{e.name}", e.run()) for e in self.extensions),
            )
        ]
        for task in tasks:
            task.add_done_callback(_report_crash)
        try:
            async with AsyncExitStack() as stack:
                if self.metrics is not None and self.settings.metrics.listen is not None:
                    await stack.enter_async_context(
                        self.metrics.listener(self.db, self.settings.metrics.listen, self.metrics_socket)
                    )
                yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Executions in flight may finish within the drain's grace (app/drain.py), and use their
            # stdio child until then: stop the children after.
            await self.ledger.shutdown(grace=self.drain.remaining())
            await self.stdio.stop()
            await self.audit.flush()
            await self._http.close()
            await self.db.dispose()


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("background task %s stopped", task.get_name(), exc_info=task.exception())
