"""`notifications/tasks` on a `subscriptions/listen` stream (the 2026-07-28 tasks extension).

A client that declares the extension may subscribe to its tasks with
`subscriptions/listen {notifications: {taskIds: [...]}}` instead of polling `tasks/get`. Airlock
serves such a stream itself when it asks for task notifications only: the first message,
`notifications/subscriptions/acknowledged`, lists the ids it will report on (the caller's own
tasks; another agent's id, or one that does not exist, is left out without saying which), then
each of those tasks is sent as a full DetailedTask in `notifications/tasks` now and whenever its
status or status message changes, ending with its terminal state (and `result` or `error`).
Keep-alive comments follow until the client closes the stream. Every message carries
`_meta["io.modelcontextprotocol/subscriptionId"]`, the listen request's id.

Deliberate limitation: a listen request that asks for anything else as well (tool list changes,
resource updates) is relayed to the upstream as before, without Airlock's tasks (its
acknowledgement then omits `taskIds`, so the client knows to poll `tasks/get`): merging two
servers' streams is not done here. Changes are seen at once on the replica that made them and
within `[approvals] safety_poll_seconds` on another.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY

from app.gateway.exchange import Exchange
from app.gateway.relay import until_disconnect
from app.gateway.respond import send_chunk, start_sse
from app.jsonrpc import Message, dumps
from app.sse import comment, encode
from app.tasks.extension import detailed, tasks_of
from app.tasks.model import TaskView
from app.tasks.service import TaskNotFound, Tasks
from app.types import JSONObject

TASK_IDS: Final = "taskIds"
ACKNOWLEDGED: Final = "notifications/subscriptions/acknowledged"
TASK_NOTIFICATION: Final = "notifications/tasks"


def task_ids_only(params: JSONObject) -> list[str] | None:
    """The task ids of a listen request that asks for task notifications and nothing else (else None)."""
    notifications = params.get("notifications")
    if not isinstance(notifications, dict):
        return None
    ids = notifications.get(TASK_IDS)
    if not isinstance(ids, list) or not all(isinstance(task_id, str) for task_id in ids):
        return None
    if any(value for key, value in notifications.items() if key != TASK_IDS):
        return None
    return list(dict.fromkeys(ids))


async def serve_listen(exchange: Exchange, message: Message, task_ids: list[str]) -> None:
    """Serve a task-only `subscriptions/listen` until the client disconnects."""
    tasks = tasks_of(exchange)
    owned: list[TaskView] = []
    for task_id in task_ids:
        with contextlib.suppress(TaskNotFound):
            owned.append(await tasks.view(task_id, exchange.agent))
    meta = {SUBSCRIPTION_ID_META_KEY: message.id}
    await start_sse(exchange.send)
    stream = _ListenStream(exchange, tasks, meta)
    await stream.send(ACKNOWLEDGED, {"notifications": {TASK_IDS: [view.id for view in owned]}})
    await until_disconnect(exchange.receive, stream.run(owned))


class _ListenStream:
    def __init__(self, exchange: Exchange, tasks: Tasks, meta: dict[str, Any]) -> None:
        self._exchange = exchange
        self._tasks = tasks
        self._meta = meta
        self._lock = asyncio.Lock()

    async def send(self, method: str, params: JSONObject) -> None:
        notification = {"jsonrpc": "2.0", "method": method, "params": {**params, "_meta": self._meta}}
        async with self._lock:
            await send_chunk(self._exchange.send, encode(dumps(notification).decode("utf-8")))

    async def run(self, owned: list[TaskView]) -> None:
        keepalive = asyncio.ensure_future(self._keep_alive())
        try:
            await asyncio.gather(*(self._follow(view.id) for view in owned))
            await keepalive  # the client ends the stream
        finally:
            keepalive.cancel()

    async def _follow(self, task_id: str) -> None:
        last: tuple[Any, Any] | None = None
        with contextlib.suppress(TaskNotFound):  # purged meanwhile: nothing more to say about it
            async for view in self._tasks.follow(task_id, self._exchange.agent):
                task = await detailed(self._tasks, view)
                task.pop("resultType", None)
                if (task["status"], task.get("statusMessage")) != last:
                    last = (task["status"], task.get("statusMessage"))
                    await self.send(TASK_NOTIFICATION, task)

    async def _keep_alive(self) -> None:
        seconds = self._exchange.gateway.settings.approvals.keepalive_seconds
        while True:
            await asyncio.sleep(seconds)
            async with self._lock:
                await send_chunk(self._exchange.send, comment("listening"))
