"""The tasks of MCP 2025-11-25 on `tools/call`: create, read, list, cancel, wait, and the final answer.

A task is bound to the agent that created it, not to a session: the same agent finds it again
after a reconnect or an Airlock restart, on any replica (the row is the task), and another agent
gets "not found", exactly as for an id that never existed. A task on a held call reads its
approval through the approvals service (`app/approvals/service.py`, the lifecycle's one owner);
cancelling it withdraws a pending approval through the same compare-and-set every withdrawal uses.
A task on a call the policy allowed runs that call once, in the background, and stores the
upstream's answer on the row.

Lifetimes: a task lives at least as long as its approval can (the approval's
timeout plus `[approvals] result_retention_seconds`), whatever the client asked for (the Python
SDK asks for 60 s), and otherwise what the client asked for, up to `[tasks] max_ttl_seconds`.
After that it is gone ("not found").

What it does not do: JSON-RPC framing and SSE (`handlers.py`), policy (the gateway judged the
call before it got here), wording (`app/approvals/wording.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Final

import aiohttp
from sqlalchemy.exc import IntegrityError

from app.approvals.outcomes import final_message, too_large_text
from app.approvals.service import Approvals, Attachment
from app.approvals.wording import task_lost_message
from app.clock import Clock
from app.config import ApprovalSettings, TaskSettings
from app.jsonrpc import tool_error_result
from app.store import tasks as task_store
from app.store.db import Database
from app.store.tasks import TaskRow
from app.tasks.model import TaskRequest, TaskView, new_task_id, related_task
from app.upstream import ResponseTooLarge, Upstream, UpstreamUnavailable

logger = logging.getLogger("airlock.tasks")

LIST_PAGE: Final = 50
"""Tasks per `tasks/list` page."""
PURGE_EVERY: Final = 60.0
"""Seconds between two purges of tasks past their ttl (they read as "not found" already)."""
PURGE_BATCH: Final = 500


class TaskNotFound(Exception):
    """No such task for this agent (never existed, another agent's, or past its ttl)."""


class InvalidCursor(Exception):
    """A `tasks/list` cursor this server did not hand out."""


class TaskFinished(Exception):
    """The task is already terminal, so it cannot be cancelled."""

    def __init__(self, view: TaskView) -> None:
        super().__init__(f"task {view.id} is already {view.status}")
        self.view = view


class Tasks:
    def __init__(
        self,
        db: Database,
        approvals: Approvals,
        settings: TaskSettings,
        approval_settings: ApprovalSettings,
        *,
        public_url: str,
    ) -> None:
        self._db = db
        self._approvals = approvals
        self.settings = settings
        self._approval_settings = approval_settings
        self.public_url = public_url
        self._settled: dict[str, asyncio.Event] = {}

    async def run(self) -> None:
        """Purge tasks past their ttl, every `PURGE_EVERY` seconds, in bounded batches, until cancelled."""
        while True:
            try:
                await self.purge()
            except Exception:
                logger.exception("purging expired tasks failed; retrying")
            await self.clock.sleep(PURGE_EVERY)

    async def purge(self) -> int:
        """Delete tasks past their ttl (every replica may: a deleted row is deleted once); returns how many."""
        purged = 0
        while True:
            async with self._db.write() as conn:
                batch = await task_store.purge_expired(conn, self.clock.now(), PURGE_BATCH)
            purged += batch
            if batch < PURGE_BATCH:
                return purged

    @property
    def clock(self) -> Clock:
        return self._approvals.clock

    def wire(self, view: TaskView) -> dict[str, Any]:
        """The `Task` object for `view`, now."""
        return view.wire(self.public_url, self.clock.now(), waiting_ms=self.settings.poll_interval_ms)

    async def for_held(self, attachment: Attachment, requested: TaskRequest) -> TaskView:
        """The task of a parked call: the approval's existing task (an identical retry), or a new one."""
        approval = attachment.approval
        async with self._db.read() as conn:
            existing = await task_store.for_approval(conn, approval.id)
        if existing is not None and existing.agent == approval.agent:
            return TaskView(existing, approval)
        # The approval's whole timeout, not what is left of it: a retry's task never outlives less.
        floor = approval.expires_at - approval.created_at + self._approval_settings.result_retention_seconds
        row = self._new_row(approval.agent, approval.upstream, approval.tool, requested, floor, approval.id)
        try:
            async with self._db.write() as conn:
                await task_store.insert(conn, row)
        except IntegrityError:
            # An identical task-augmented call (maybe on another replica) created it first.
            async with self._db.read() as conn:
                winner = await task_store.for_approval(conn, approval.id)
            if winner is None:
                raise
            row = winner
        return TaskView(row, approval)

    async def for_allowed(self, agent: str, upstream: str, tool: str, requested: TaskRequest) -> TaskView:
        """A new task for a call the policy allows; `run_allowed` then runs it."""
        floor = self._approval_settings.result_retention_seconds
        row = self._new_row(agent, upstream, tool, requested, floor, None)
        async with self._db.write() as conn:
            await task_store.insert(conn, row)
        return TaskView(row, None)

    def _new_row(
        self, agent: str, upstream: str, tool: str, requested: TaskRequest, floor: float, approval_id: str | None
    ) -> TaskRow:
        now = self.clock.now()
        asked = self.settings.max_ttl_seconds if requested.ttl_ms is None else requested.ttl_ms / 1000
        ttl = max(floor, min(asked, self.settings.max_ttl_seconds))
        return TaskRow(
            id=new_task_id(),
            agent=agent,
            upstream=upstream,
            tool=tool,
            approval_id=approval_id,
            result=None,
            note=None,
            lease_until=None if approval_id is not None else now + self._approval_settings.execution_lease_seconds,
            cancelled_at=None,
            created_at=now,
            updated_at=now,
            expires_at=now + ttl,
        )

    def run_allowed(self, view: TaskView, upstream: Upstream, headers: Mapping[str, str], body: bytes) -> None:
        """Send the allowed call upstream once, in its own task, and store the answer on the task."""
        self._approvals.spawn(self._run_allowed(view.id, upstream, headers, body))

    async def _run_allowed(self, task_id: str, upstream: Upstream, headers: Mapping[str, str], body: bytes) -> None:
        renewing = asyncio.ensure_future(self._renew(task_id))
        try:
            answer = await _call(upstream, headers, body, tool=_tool_of(body))
        finally:
            renewing.cancel()
        now = self.clock.now()
        async with self._db.write() as conn:
            await task_store.settle(conn, task_id, json.dumps(answer, ensure_ascii=False), now)
        self._settled.setdefault(task_id, asyncio.Event()).set()

    async def _renew(self, task_id: str) -> None:
        """Keep vouching for a running call, so no reader takes it for lost (see `_lost`)."""
        lease = self._approval_settings.execution_lease_seconds
        while True:
            await self.clock.sleep(lease / 3)
            async with self._db.write() as conn:
                await task_store.renew(conn, task_id, self.clock.now() + lease)

    async def _lost(self, row: TaskRow) -> TaskRow:
        """An allowed call whose process stopped vouching for it (it died mid-call) ends as outcome unknown.

        A compare-and-set, like every other settling: a late answer from a process that was only
        slow loses to it, and readers on every replica agree.
        """
        text = task_lost_message(row.tool)
        answer = json.dumps({"result": tool_error_result(text)}, ensure_ascii=False)
        async with self._db.write() as conn:
            await task_store.settle(conn, row.id, answer, self.clock.now(), note=text)
            settled = await task_store.get(conn, row.id)
        return settled or row

    async def refuse(self, view: TaskView, text: str) -> None:
        """End a new task with Airlock's refusal of its call (the call never reached the upstream)."""
        answer = {"result": tool_error_result(text)}
        async with self._db.write() as conn:
            await task_store.settle(conn, view.id, json.dumps(answer, ensure_ascii=False), self.clock.now(), note=text)

    async def view(self, task_id: str, agent: str) -> TaskView:
        """`agent`'s task `task_id` now. Raises `TaskNotFound` (also for another agent's)."""
        async with self._db.read() as conn:
            row = await task_store.get(conn, task_id)
        if row is None or row.agent != agent or row.expires_at <= self.clock.now():
            raise TaskNotFound(task_id)
        return await self._view(row)

    async def _view(self, row: TaskRow) -> TaskView:
        if row.approval_id is None:
            lapsed = row.result is None and row.lease_until is not None and row.lease_until < self.clock.now()
            return TaskView(await self._lost(row) if lapsed else row, None)
        approval = await self._approvals.get(row.approval_id)
        if approval is None:  # pruned with its approval: the task is gone too
            raise TaskNotFound(row.id)
        return TaskView(row, approval)

    async def list(self, agent: str, cursor: str | None) -> tuple[list[TaskView], str | None]:
        """One page of `agent`'s own live tasks, oldest first, and the cursor of the next page.

        Raises:
            InvalidCursor: `cursor` is not one this server handed out.
        """
        after = _cursor_position(cursor)
        async with self._db.read() as conn:
            rows = await task_store.list_for_agent(conn, agent, now=self.clock.now(), after=after, limit=LIST_PAGE + 1)
        views = []
        for row in rows[:LIST_PAGE]:
            with contextlib.suppress(TaskNotFound):
                views.append(await self._view(row))
        more = len(rows) > LIST_PAGE
        return views, (_cursor_of(rows[LIST_PAGE - 1]) if more else None)

    async def cancel(self, task_id: str, agent: str) -> TaskView:
        """Cancel `agent`'s task: a pending approval is withdrawn and never runs; a running call is not undone.

        Raises:
            TaskNotFound: no such task for this agent.
            TaskFinished: it is already terminal.
        """
        view = await self.view(task_id, agent)
        if view.is_terminal:
            raise TaskFinished(view)
        if view.approval is not None:
            await self._approvals.withdraw(view.approval.id, by=agent, reason="the client cancelled the task")
        async with self._db.write() as conn:
            await task_store.cancel(conn, task_id, self.clock.now())
        self._settled.setdefault(task_id, asyncio.Event()).set()
        return await self.view(task_id, agent)

    async def withdraw(self, task_id: str, agent: str) -> TaskView:
        """Cancel `agent`'s task the 2026-07-28 way: withdraw a pending approval; otherwise change nothing.

        The extension's `tasks/cancel` is cooperative: once a call was approved it runs to its own
        end (completed or failed), so no cancellation is recorded on the row (`TaskView.status`
        would then say `cancelled` for a call that ran).

        Raises:
            TaskNotFound: no such task for this agent.
        """
        view = await self.view(task_id, agent)
        if view.approval is not None and view.approval.is_open:
            await self._approvals.withdraw(view.approval.id, by=agent, reason="the client cancelled the task")
        return await self.view(task_id, agent)

    async def outcome(self, view: TaskView) -> dict[str, Any] | None:
        """A finished held call's `result` or `error` member in the 2026-07-28 shape (None while open).

        The same member a plain 2026-07-28 call would have received; reading it counts as delivery.
        """
        approval = view.approval
        if approval is None or not approval.is_finished:
            return None
        if approval.delivered_at is None:  # polled again and again: write once
            await self._approvals.mark_delivered(approval.id, stream_id=f"task {view.id}")
        return final_message(approval, self.public_url, modern=True)

    async def wait(self, task_id: str, agent: str) -> TaskView:
        """`agent`'s task once it is terminal (unbounded: the caller bounds it)."""
        view = await self.view(task_id, agent)
        poll = self._approval_settings.safety_poll_seconds
        with self._changes(view) as changed:
            while True:
                view = await self.view(task_id, agent)
                if view.is_terminal:
                    self._settled.pop(task_id, None)
                    return view
                await self.clock.wait(changed, poll)
                changed.clear()

    async def follow(self, task_id: str, agent: str) -> AsyncIterator[TaskView]:
        """`agent`'s task now, then again whenever it may have changed, until it is terminal.

        Raises:
            TaskNotFound: no such task for this agent (also when it vanishes meanwhile).
        """
        view = await self.view(task_id, agent)
        poll = self._approval_settings.safety_poll_seconds
        with self._changes(view) as changed:
            while True:
                changed.clear()
                view = await self.view(task_id, agent)
                yield view
                if view.is_terminal:
                    return
                await self.clock.wait(changed, poll)

    @contextlib.contextmanager
    def _changes(self, view: TaskView) -> Iterator[asyncio.Event]:
        """An event set when the task may have changed (a slow poll covers other replicas)."""
        if view.row.approval_id is None:
            yield self._settled.setdefault(view.id, asyncio.Event())
            return
        with self._approvals.ledger.notifier.waiter(view.row.approval_id) as changed:
            yield changed

    async def answer(self, view: TaskView) -> dict[str, Any]:
        """The `result` or `error` member of a terminal task's `tasks/result` response.

        The call's own answer, exactly as a plain call would have received it, with the
        related-task metadata added; a held call's outcome then counts as delivered.
        """
        approval = view.approval
        if approval is not None and approval.is_finished:
            member = final_message(approval, self.public_url, modern=False)
            await self._approvals.mark_delivered(approval.id, stream_id=f"task {view.id}")
        elif view.stored is not None and view.stored.message is not None:
            member = {key: value for key, value in view.stored.message.items() if key in ("result", "error")}
        else:
            text = view.message(self.public_url, self.clock.now())
            member = {"result": tool_error_result(text)}
        if isinstance(member.get("result"), dict):
            result = dict(member["result"])
            result["_meta"] = {**(result.get("_meta") or {}), **related_task(view.id)}
            return {"result": result}
        return member


async def _call(upstream: Upstream, headers: Mapping[str, str], body: bytes, *, tool: str) -> dict[str, Any]:
    """The upstream's answer to one allowed call, as a JSON-RPC response member; never raises."""
    try:
        async with upstream.request("POST", headers=headers, body=body, fresh_connection=True) as response:
            answer = await response.answer()
            status = response.status
    except UpstreamUnavailable as exc:
        return {"result": tool_error_result(f"The upstream server is unreachable ({exc}). The call did not run.")}
    except ResponseTooLarge as exc:
        return {"result": tool_error_result(too_large_text(tool, exc.size, exc.limit))}
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        logger.warning("allowed task call to %s cut off: %s", upstream.name, type(exc).__name__)
        return {
            "result": tool_error_result(
                f"The connection to the upstream failed while {tool} ran ({type(exc).__name__}). "
                "It may or may not have taken effect; check before retrying."
            )
        }
    if answer is None or not ("result" in answer or "error" in answer):
        text = f"The upstream answered HTTP {status} without a JSON-RPC response; {tool} may or may not have run."
        return {"result": tool_error_result(text)}
    return {key: value for key, value in answer.items() if key in ("result", "error")}


def _tool_of(body: bytes) -> str:
    params = json.loads(body).get("params") or {}
    return str(params.get("name", "the tool"))


def _cursor_of(row: TaskRow) -> str:
    return json.dumps([row.created_at, row.id])


def _cursor_position(cursor: str | None) -> tuple[float, str] | None:
    """Where a `tasks/list` cursor points (None: the first page). Raises `InvalidCursor`."""
    if cursor is None:
        return None
    try:
        created_at, task_id = json.loads(cursor)
        return float(created_at), str(task_id)
    except (ValueError, TypeError):
        raise InvalidCursor(cursor) from None
