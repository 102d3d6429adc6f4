"""A task as an agent reads it: the `Task` object of MCP 2025-11-25, derived from its row and approval.

A task is not a second state machine. A task on a held call is a view of its approval: its status
and `statusMessage` are read from the approval each time (the mapping below, from
`../shared/reference/tasks.md` §4); a task on a call the policy allowed at once is `working` until
the upstream's answer is stored on it. The only fact a task adds is the agent's cancellation.

| approval                                    | task        |
|---------------------------------------------|-------------|
| pending, approved, executing                | `working`   |
| completed, the tool answered without error  | `completed` |
| completed with `isError`, failed, outcome_unknown, rejected, expired | `failed` (`tasks/result` carries the result or error) |
| withdrawn, or cancelled by the agent        | `cancelled` |

Never `input_required`: the human is out of band, and a client would block on `tasks/result`.

Pure module: no I/O. The sentences are `app/approvals/wording.py`'s.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final

from mcp_types import Task as WireTask
from mcp_types import TaskStatus

from app.approvals.model import Approval, Status, StoredResult
from app.approvals.wording import (
    answer_outcome,
    iso,
    review_url,
    task_answer_message,
    task_cancelled_message,
    task_message,
    task_running_message,
)
from app.jsonrpc import INVALID_PARAMS, MessageError
from app.store.tasks import TaskRow
from app.types import JSONObject

RELATED_TASK_META: Final = "io.modelcontextprotocol/related-task"
"""The `_meta` key that ties a message to its task (2025-11-25, "Associating task-related messages")."""
IMMEDIATE_RESPONSE_META: Final = "io.modelcontextprotocol/model-immediate-response"
"""The `_meta` key of a `CreateTaskResult`'s text for the model while the task runs (2025-11-25)."""
TASKS_SINCE: Final = "2025-11-25"
"""The first protocol revision with tasks; older sessions never see them."""
EXECUTING_POLL_MS: Final = 1000
"""The suggested poll interval once a human has decided (the answer is seconds away)."""


def new_task_id() -> str:
    """An unguessable task id (192 random bits): it is the handle another agent must not find."""
    return "tsk_" + secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """The `task` member of a task-augmented `tools/call`."""

    ttl_ms: int | None
    """What the client asked for; the server decides (and reports) the actual value."""


def requested_task(params: JSONObject) -> TaskRequest | None:
    """The call's `task` request, or None for a plain call. Raises `MessageError` for a malformed one."""
    task = params.get("task")
    if task is None:
        return None
    if not isinstance(task, dict):
        raise MessageError(INVALID_PARAMS, "Invalid params: task must be an object")
    ttl = task.get("ttl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
        raise MessageError(INVALID_PARAMS, "Invalid params: task.ttl must be a non-negative integer (ms)")
    return TaskRequest(ttl)


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task now: its row and, for a held call, its approval."""

    row: TaskRow
    approval: Approval | None

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def status(self) -> TaskStatus:
        if self.approval is not None:
            if self.row.cancelled_at is not None or self.approval.status is Status.WITHDRAWN:
                return "cancelled"
            return approval_task_status(self.approval)
        if self.row.cancelled_at is not None:
            return "cancelled"
        stored = self.stored
        if stored is None:
            return "working"
        return "completed" if stored.result is not None and not stored.is_error else "failed"

    @property
    def is_terminal(self) -> bool:
        return self.status != "working"

    @property
    def stored(self) -> StoredResult | None:
        """The upstream's answer of an allowed call (None while it runs, and for a held call)."""
        return None if self.row.result is None else StoredResult.parse(self.row.result)

    def message(self, public_url: str, now: float) -> str:
        approval = self.approval
        if approval is not None:
            if self.row.cancelled_at is not None and approval.status is not Status.WITHDRAWN:
                return task_cancelled_message(started=approval.status is not Status.PENDING)
            return task_message(approval, review_url(public_url, approval.id), now)
        if self.row.cancelled_at is not None:
            return task_cancelled_message(started=True)
        stored = self.stored
        if stored is None:
            return task_running_message(self.row.tool, self.row.upstream)
        if self.row.note is not None:
            return self.row.note
        return task_answer_message(answer_outcome(stored))

    def poll_interval(self, waiting_ms: int) -> int:
        """Slow while a human decides, fast once the call is about to run or running."""
        if self.approval is not None and self.approval.status is Status.PENDING:
            return waiting_ms
        return EXECUTING_POLL_MS

    def wire(self, public_url: str, now: float, *, waiting_ms: int) -> dict[str, Any]:
        """The `Task` object (camelCase wire names) as `tasks/get` and `CreateTaskResult` carry it."""
        row = self.row
        task = WireTask(
            task_id=row.id,
            status=self.status,
            status_message=self.message(public_url, now),
            created_at=iso(row.created_at) or "",
            last_updated_at=iso(self._updated_at()) or "",
            ttl=round((row.expires_at - row.created_at) * 1000),
            poll_interval=None if self.is_terminal else self.poll_interval(waiting_ms),
        )
        return task.model_dump(by_alias=True, mode="json", exclude_none=True)

    @property
    def updated_at(self) -> float:
        """When the task (its row or its approval) last changed."""
        return self._updated_at()

    def _updated_at(self) -> float:
        if self.approval is None:
            return self.row.updated_at
        return max(self.row.updated_at, self.approval.updated_at)


def approval_task_status(approval: Approval) -> TaskStatus:
    """The 2025-11-25 status of a task whose call was held for `approval` (the table above)."""
    if approval.is_open:
        return "working"
    if approval.status is Status.WITHDRAWN:
        return "cancelled"
    if approval.status is Status.COMPLETED and not approval.tool_reported_error:
        return "completed"
    return "failed"


def related_task(task_id: str) -> dict[str, Any]:
    return {RELATED_TASK_META: {"taskId": task_id}}
