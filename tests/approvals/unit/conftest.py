"""The approvals service on the real store, in virtual time: no HTTP, no uvicorn, no real waits.

`lifecycle` builds what `app/runtime.py` builds for the approval path (ledger, queue, executor,
sweeper, service) on a migrated database of its own (SQLite, or PostgreSQL under
`AIRLOCK_TEST_DATABASE=postgres`), with a `FakeClock` and a `ScriptedUpstream` that counts calls
and answers when the test lets it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from app.approvals.channels import ChannelFanout
from app.approvals.executor import Executor
from app.approvals.ledger import Ledger
from app.approvals.model import Approval
from app.approvals.queue import ApprovalQueue
from app.approvals.service import Approvals, Attachment, Hold, HoldEvent, ParkRequest
from app.approvals.signals import Notifier
from app.approvals.sweeper import Sweeper
from app.audit import AuditLog
from app.clock import FakeClock
from app.config import ApprovalSettings, SessionSettings
from app.jsonrpc import arguments_hash
from app.policy.engine import Decision
from app.protocol import Era
from app.sessions import SessionRegistry
from app.store import tokens as token_store
from app.store.db import Database

UPSTREAM = "market"
AGENT = "agent-1"
REVIEWER = "carol"
BOUNDED = 5.0
"""Seconds of real time any single wait in these tests may take (they take milliseconds)."""


@dataclass
class ScriptedUpstream:
    """An upstream that counts `tools/call` requests and answers each once `release` is set."""

    name: str = UPSTREAM
    calls: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Sent as SSE events before the answer (progress, elicitation)."""

    @asynccontextmanager
    async def request(self, method: str, *, body: bytes, **_: Any) -> AsyncIterator[_Response]:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        yield _Response(self.messages, json.loads(body)["id"])


@dataclass
class _Event:
    data: str
    comment: str | None = None


class _Response:
    status = 200
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, messages: list[dict[str, Any]], request_id: str) -> None:
        self._messages = messages
        self._answer = {"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": "done"}]}}
        self.is_sse = bool(messages)

    async def events(self) -> AsyncIterator[_Event]:
        for message in self._messages:
            yield _Event(json.dumps(message))
        yield _Event(json.dumps(self._answer))

    async def read(self) -> bytes:
        return json.dumps(self._answer).encode()

    async def answer(self) -> dict[str, Any]:
        return self._answer


@dataclass
class Lifecycle:
    approvals: Approvals
    clock: FakeClock
    upstream: ScriptedUpstream
    settings: ApprovalSettings
    db: Database
    ledger: Ledger
    executor: Executor

    def sweeper(self) -> Sweeper:
        """Another process's sweeper over the same queue (they must never duplicate an action)."""
        queue = ApprovalQueue(self.ledger, self.settings)
        return Sweeper(self.ledger, queue, self.executor, self.settings)

    async def park(
        self,
        *,
        task: str = "task-1",
        request_id: int = 1,
        era: Era = Era.MODERN,
        session_id: str | None = None,
        hold_seconds: float = 40.0,
        priming: bool = False,
        decision: Decision | None = None,
    ) -> Attachment:
        arguments = {"task_id": task}
        request = ParkRequest(
            upstream=UPSTREAM,
            tool="cancel_task",
            agent=AGENT,
            arguments=arguments,
            args_hash=arguments_hash(arguments),
            params_text=json.dumps({"name": "cancel_task", "arguments": arguments}),
            forward_headers={},
            era=era,
            protocol_version="2026-07-28" if era is Era.MODERN else "2025-11-25",
            session_id=session_id,
            request_id=request_id,
            progress_token=None,
            decision=decision or Decision(action="approve", rule="rules[0]", rule_id="cancel", reason="irreversible"),
            policy_version="1",
            hold_seconds=hold_seconds,
        )
        return await self.approvals.park(request, priming=priming)

    async def approval(self, approval_id: str) -> Approval:
        approval = await self.approvals.get(approval_id)
        assert approval is not None
        return approval

    async def approve(self, approval_id: str) -> Approval:
        return await self.approvals.decide(approval_id, reviewer=REVIEWER, verdict="approve", via="api")


class Listener:
    """A holder: collects a hold's events in a task of its own, as the gateway's held request does."""

    def __init__(self, hold: Hold, *, replay_after: int | None = None) -> None:
        self.hold = hold
        self._events: asyncio.Queue[HoldEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._listen(replay_after))

    async def _listen(self, replay_after: int | None) -> None:
        async with aclosing(self.hold.events(replay_after=replay_after)) as events:
            async for event in events:
                await self._events.put(event)

    async def next(self) -> HoldEvent:
        async with asyncio.timeout(BOUNDED):
            return await self._events.get()

    def heard_nothing(self) -> bool:
        return self._events.empty()

    async def leave(self) -> None:
        """The agent goes away: its request's task is cancelled."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def lifecycle(database_url: str) -> AsyncIterator[Lifecycle]:
    clock = FakeClock()
    db = Database(database_url)
    settings = ApprovalSettings()
    ledger = Ledger(db, Notifier(), ChannelFanout([]), AuditLog(db), clock=clock)
    upstream = ScriptedUpstream()
    upstreams: dict[str, Any] = {UPSTREAM: upstream}
    sessions = SessionRegistry(db, SessionSettings(), upstreams, clock=clock.now)
    executor = Executor(ledger, upstreams, sessions, lease_seconds=settings.execution_lease_seconds)
    queue = ApprovalQueue(ledger, settings)
    sweeper = Sweeper(ledger, queue, executor, settings)
    approvals = Approvals(ledger, queue, executor, sweeper, settings, public_url="https://airlock.test")
    async with db.write() as conn:
        await token_store.insert_reviewer(conn, name=REVIEWER, token_hash="hash", slack_user_id=None, now=clock.now())
        await token_store.insert_reviewer(conn, name="dave", token_hash="hash-2", slack_user_id=None, now=clock.now())
    try:
        yield Lifecycle(approvals, clock, upstream, settings, db, ledger, executor)
    finally:
        upstream.release.set()
        await ledger.shutdown()
        await db.dispose()


async def bounded(awaitable: Any) -> Any:
    async with asyncio.timeout(BOUNDED):
        return await awaitable
