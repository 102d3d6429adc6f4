"""One Airlock process's long-lived parts, built from `Settings`, and the one owner of their lifecycle.

`Runtime.run()` is entered once from the Starlette lifespan: it opens the upstream connection
pool, then supervises the background work (policy reloader, audit writer, approval sweeper,
cross-replica wake-ups, session janitor) until shutdown, when it cancels them, writes what the
audit log still holds, and disposes the engine. Nothing here is created at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from app.approvals.channels import ChannelFanout, LogChannel, ReviewChannel
from app.approvals.executor import Executor
from app.approvals.ledger import Ledger
from app.approvals.queue import ApprovalQueue
from app.approvals.signals import notifier_for
from app.approvals.sweeper import Sweeper
from app.audit import AuditLog
from app.auth import Credentials
from app.config import Settings
from app.drain import Drain
from app.extension import Extension
from app.gateway.intercept import Interceptor
from app.gateway.limits import HeldLimits
from app.metrics import Metrics
from app.policy.engine import Decision
from app.policy.ratelimit import RateLimiter
from app.policy.reloader import PolicyReloader
from app.sessions import SessionRegistry
from app.store.db import Database
from app.upstream import Upstream, new_client_session

logger = logging.getLogger("airlock")


class Runtime:
    def __init__(self, settings: Settings, *, channels: Sequence[ReviewChannel] = ()) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        self.credentials = Credentials(self.db, cache_seconds=settings.token_cache_seconds)
        self.policies = PolicyReloader({u.name: u.policy for u in settings.upstreams})
        self.metrics = Metrics() if settings.metrics.enabled else None
        self.audit = AuditLog(self.db, store_arguments=settings.audit_store_arguments, metrics=self.metrics)
        self.notifier = notifier_for(self.db)
        self.channels = ChannelFanout([LogChannel(settings.public_url), *channels])
        self.ledger = Ledger(self.db, self.notifier, self.channels, self.audit, self.metrics)
        self.queue = ApprovalQueue(self.ledger, settings.approvals)
        self.upstreams: dict[str, Upstream] = {}
        self.sessions = SessionRegistry(self.db, settings.sessions, self.upstreams)
        self.held = HeldLimits(settings.approvals.max_held_per_agent)
        self.drain = Drain()
        if self.metrics is not None:
            metrics = self.metrics
            metrics.watch_held(self.held.total)
            self.policies.add_listener(lambda upstream, _policy: metrics.policy_reloaded(upstream, True))
            self.policies.add_failure_listener(lambda upstream, _problem: metrics.policy_reloaded(upstream, False))
        self.interceptor = Interceptor(self.policies, RateLimiter(self.db))
        self.executor = Executor(
            self.ledger, self.upstreams, self.sessions, lease_seconds=settings.approvals.execution_lease_seconds
        )
        self.sweeper = Sweeper(
            self.ledger,
            self.queue,
            self.executor,
            settings.approvals,
            audit_retention_days=settings.audit_retention_days,
        )
        self._http: aiohttp.ClientSession | None = None
        self._started = False
        self.extensions = self._build_extensions()

    def _build_extensions(self) -> list[Extension]:
        from app import inbox, slack

        extensions = [extension for extension in (slack.build(self), inbox.build(self)) if extension is not None]
        for extension in extensions:
            self.channels.channels.extend(extension.channels)
        return extensions

    def hold_seconds(self, agent: str, decision: Decision) -> float:
        """How long to hold this agent's request: the agent's setting, else the rule's, else the default."""
        approvals = self.settings.approvals
        return approvals.agent_hold_seconds.get(agent) or decision.hold or approvals.hold_seconds

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Runtime]:
        if self._started:
            raise RuntimeError("Runtime.run() can only be entered once")
        self._started = True
        self._http = new_client_session()
        for upstream in self.settings.upstreams:
            self.upstreams[upstream.name] = Upstream(
                upstream, self._http, max_response_bytes=self.settings.max_response_bytes
            )
        tasks = [
            asyncio.create_task(coroutine, name=name)
            for name, coroutine in (
                ("policy-reloader", self.policies.run()),
                ("audit-writer", self.audit.run()),
                ("approval-sweeper", self.sweeper.run()),
                ("approval-signals", self.notifier.run()),
                ("session-janitor", self.sessions.run()),
                *((f"extension-{e.name}", e.run()) for e in self.extensions),
            )
        ]
        for task in tasks:
            task.add_done_callback(_report_crash)
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.ledger.shutdown(grace=self.drain.remaining())
            await self.audit.flush()
            await self._http.close()
            await self.db.dispose()


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("background task %s stopped", task.get_name(), exc_info=task.exception())
