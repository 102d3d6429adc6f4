"""A task follows its approval's lifecycle, in virtual time: lifetimes, expiry, a lost execution,
cancellation before and after the call started, and waiting for the end.

Provenance: spec (MCP 2025-11-25 tasks: ttl reported by the receiver, `cancelled` before the
response, tasks/result blocks until terminal) and Airlock-defined (issue 17; the mapping of
`../shared/reference/tasks.md` §4), on the real store with a `FakeClock` (`tests/approvals/unit/`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.config import TaskSettings
from app.tasks.model import RELATED_TASK_META, TaskRequest
from app.tasks.service import LIST_PAGE, InvalidCursor, TaskFinished, TaskNotFound, Tasks
from tests.approvals.unit.conftest import AGENT, Lifecycle, bounded, lifecycle

__all__ = ["lifecycle"]

PYTHON_SDK_TTL = TaskRequest(ttl_ms=60_000)
"""What the Python SDK 1.x asks for by default."""


def tasks_of(lifecycle: Lifecycle, settings: TaskSettings | None = None) -> Tasks:
    return Tasks(
        lifecycle.db,
        lifecycle.approvals,
        settings or TaskSettings(),
        lifecycle.settings,
        public_url="https://airlock.test",
    )


async def test_a_task_lives_as_long_as_its_approval_can_even_when_the_client_asks_for_a_minute(
    lifecycle: Lifecycle,
) -> None:
    tasks = tasks_of(lifecycle)
    view = await tasks.for_held(await lifecycle.park(), PYTHON_SDK_TTL)
    settings = lifecycle.settings
    lifetime = settings.timeout_seconds + settings.result_retention_seconds
    assert tasks.wire(view)["ttl"] == lifetime * 1000, "the actual ttl is reported, not the one asked for"

    lifecycle.clock.advance(lifetime - 1)
    await lifecycle.approvals.sweep()
    assert (await tasks.view(view.id, AGENT)).status == "failed", "expired, and still readable"
    assert await tasks.purge() == 0, "kept until its ttl ends"
    lifecycle.clock.advance(1)
    with pytest.raises(TaskNotFound):
        await tasks.view(view.id, AGENT)
    assert (await tasks.list(AGENT, None))[0] == []
    assert await tasks.purge() == 1


async def test_an_allowed_calls_task_keeps_what_the_client_asked_for_up_to_the_maximum(lifecycle: Lifecycle) -> None:
    tasks = tasks_of(lifecycle, TaskSettings(max_ttl_seconds=10 * 86400))
    retention = lifecycle.settings.result_retention_seconds
    short = await tasks.for_allowed(AGENT, "market", "get_task", PYTHON_SDK_TTL)
    long = await tasks.for_allowed(AGENT, "market", "get_task", TaskRequest(ttl_ms=30 * 86400 * 1000))
    unasked = await tasks.for_allowed(AGENT, "market", "get_task", TaskRequest(ttl_ms=None))
    assert tasks.wire(short)["ttl"] == retention * 1000, "never shorter than an outcome is kept"
    assert tasks.wire(long)["ttl"] == tasks.wire(unasked)["ttl"] == 10 * 86400 * 1000


async def test_nobody_deciding_in_time_fails_the_task_saying_so(lifecycle: Lifecycle) -> None:
    tasks = tasks_of(lifecycle)
    view = await tasks.for_held(await lifecycle.park(), PYTHON_SDK_TTL)
    assert "expires in 30 min" in tasks.wire(view)["statusMessage"]
    lifecycle.clock.advance(lifecycle.settings.timeout_seconds)
    await lifecycle.approvals.sweep()
    wire = tasks.wire(await tasks.view(view.id, AGENT))
    assert (wire["status"], wire["statusMessage"]) == ("failed", "No decision within 30 min; not executed.")
    assert "pollInterval" not in wire, "nothing left to poll for"
    assert lifecycle.upstream.calls == 0


async def test_a_lost_execution_fails_the_task_as_outcome_unknown(lifecycle: Lifecycle) -> None:
    tasks = tasks_of(lifecycle)
    parked = await lifecycle.park()
    view = await tasks.for_held(parked, PYTHON_SDK_TTL)
    await lifecycle.approve(parked.approval.id)
    assert tasks.wire(await tasks.view(view.id, AGENT))["pollInterval"] == 1000, "decided: poll faster"
    run = lifecycle.approvals.execute(parked.approval.id)
    await bounded(lifecycle.upstream.entered.wait())
    run.cancel()  # the process stops mid-call
    await asyncio.gather(run, return_exceptions=True)
    assert (await tasks.view(view.id, AGENT)).status == "working"
    lifecycle.clock.advance(lifecycle.settings.execution_lease_seconds + 1)
    await lifecycle.sweeper().sweep()
    after = await tasks.view(view.id, AGENT)
    assert after.status == "failed"
    assert "may or may not have taken effect" in tasks.wire(after)["statusMessage"]


async def test_cancelling_after_the_call_started_is_cancelled_but_says_it_may_have_taken_effect(
    lifecycle: Lifecycle,
) -> None:
    tasks = tasks_of(lifecycle)
    parked = await lifecycle.park()
    view = await tasks.for_held(parked, PYTHON_SDK_TTL)
    await lifecycle.approve(parked.approval.id)
    run = lifecycle.approvals.execute(parked.approval.id)
    await bounded(lifecycle.upstream.entered.wait())
    cancelled = tasks.wire(await tasks.cancel(view.id, AGENT))
    assert cancelled["status"] == "cancelled"
    assert "may have taken effect" in cancelled["statusMessage"]
    lifecycle.upstream.release.set()
    assert await bounded(run) is True, "a running call is not recalled"
    assert (await tasks.view(view.id, AGENT)).status == "cancelled", "and the task stays cancelled"
    with pytest.raises(TaskFinished):
        await tasks.cancel(view.id, AGENT)
    assert lifecycle.upstream.calls == 1


async def test_waiting_for_a_task_returns_once_the_approved_call_has_run(lifecycle: Lifecycle) -> None:
    tasks = tasks_of(lifecycle)
    parked = await lifecycle.park()
    view = await tasks.for_held(parked, PYTHON_SDK_TTL)
    waiting = asyncio.create_task(tasks.wait(view.id, AGENT))
    await lifecycle.approve(parked.approval.id)
    lifecycle.upstream.release.set()
    await bounded(lifecycle.approvals.execute(parked.approval.id))
    done = await bounded(waiting)
    assert done.status == "completed"
    answer = await tasks.answer(done)
    assert answer["result"]["content"] == [{"type": "text", "text": "done"}]
    assert answer["result"]["_meta"][RELATED_TASK_META] == {"taskId": view.id}
    assert (await lifecycle.approval(parked.approval.id)).delivered_at is not None, "delivered through the task"


async def test_another_agent_gets_not_found_for_every_operation(lifecycle: Lifecycle) -> None:
    tasks = tasks_of(lifecycle)
    view = await tasks.for_held(await lifecycle.park(), PYTHON_SDK_TTL)
    for operation in (tasks.view, tasks.cancel, tasks.wait):
        with pytest.raises(TaskNotFound):
            await operation(view.id, "agent-2")
    assert (await tasks.list("agent-2", None))[0] == []
    assert (await lifecycle.approval(view.row.approval_id or "")).status == "pending"


async def test_tasks_list_pages_through_the_agents_own_tasks_oldest_first(lifecycle: Lifecycle) -> None:
    tasks = tasks_of(lifecycle)
    made = []
    for _ in range(LIST_PAGE + 1):
        made.append((await tasks.for_allowed(AGENT, "market", "get_task", PYTHON_SDK_TTL)).id)
        lifecycle.clock.advance(0.001)
    await tasks.for_allowed("agent-2", "market", "get_task", PYTHON_SDK_TTL)
    first, cursor = await tasks.list(AGENT, None)
    assert cursor is not None
    rest, end = await tasks.list(AGENT, cursor)
    assert [view.id for view in first + rest] == made and end is None
    with pytest.raises(InvalidCursor):
        await tasks.list(AGENT, "not a cursor")


async def test_an_allowed_call_stays_working_while_it_runs_and_ends_unknown_if_its_process_died(
    lifecycle: Lifecycle,
) -> None:
    tasks = tasks_of(lifecycle)
    lease = lifecycle.settings.execution_lease_seconds
    running = await tasks.for_allowed(AGENT, "market", "cancel_task", PYTHON_SDK_TTL)
    body = {"jsonrpc": "2.0", "id": "airlock-1", "method": "tools/call", "params": {"name": "cancel_task"}}
    upstream: Any = lifecycle.upstream  # scripted: counts calls, answers when released
    tasks.run_allowed(running, upstream, {}, json.dumps(body).encode())
    await bounded(lifecycle.upstream.entered.wait())
    orphan = await tasks.for_allowed(AGENT, "market", "cancel_task", PYTHON_SDK_TTL)  # its process died at once
    for _ in range(6):  # two leases: the running call's process keeps renewing
        await bounded(lifecycle.clock.sleeping())
        lifecycle.clock.advance(lease / 3)
    await bounded(lifecycle.clock.sleeping())

    assert (await tasks.view(running.id, AGENT)).status == "working"
    lost = await tasks.view(orphan.id, AGENT)
    assert lost.status == "failed"
    assert "may or may not have taken effect" in tasks.wire(lost)["statusMessage"]
    assert (await tasks.answer(lost))["result"]["isError"] is True

    lifecycle.upstream.release.set()
    done = await bounded(tasks.wait(running.id, AGENT))
    assert done.status == "completed"
    assert (await tasks.answer(done))["result"]["content"] == [{"type": "text", "text": "done"}]
    assert lifecycle.upstream.calls == 1
