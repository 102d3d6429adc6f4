"""The 2026-07-28 tasks extension (`io.modelcontextprotocol/tasks`) for held calls: the task handle,
`tasks/get`, `tasks/update`, `tasks/cancel`, and the extension in `server/discover`.

The server decides per request, and only for a request whose
`_meta["io.modelcontextprotocol/clientCapabilities"].extensions` declares the extension. Airlock
answers a `tools/call` the policy parks with a task handle (`resultType: "task"`) once the approval
and its task are committed, so a `tasks/get` for it resolves at once (durable before acknowledged);
nothing holds the request open. A call the policy allows, or refuses, gets a plain result: the
extension lets the server choose. Everything else (clients that do not declare the extension, the
handshake era's 2025-11-25 tasks in `handlers.py`) is untouched.

The task is a view of its approval (`model.TaskView`), mapped the 2026 way
(`../shared/reference/tasks.md` §4), which differs from 2025-11-25's: a tool result with
`isError: true` (a rejection, an expiry, an unknown outcome, a tool error) is `completed` with that
result; `failed` only carries an upstream's JSON-RPC error; a withdrawn approval is `cancelled`.
Never `input_required`: the reviewer is out of band, and `tasks/update` is for input the upstream
asks for, which a held call never does (it is acknowledged and ignored, as the specification says
of answers to requests a task did not make).

Errors, from the extension's specification (not its out-of-date overview page, which says -32003):
`tasks/*` without the extension declared get -32021 with `data.requiredCapabilities`; an unknown
id, another agent's, or one past its ttl gets -32602 (the same answer, so nothing confirms another
agent's task exists); an `Mcp-Name` header that is not the `taskId` gets -32020.

Deliberate departure: the `params` stored for the approval (and sent upstream once it is approved)
are re-encoded without the tasks extension in the client's capabilities, because the task is
Airlock's, not the upstream's; the arguments judged are the arguments sent.

Not here: `notifications/tasks` over `subscriptions/listen` (`listen.py`).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS, decode_header_value
from mcp.types import CLIENT_CAPABILITIES_META_KEY, MISSING_REQUIRED_CLIENT_CAPABILITY

from app.approvals.model import Status
from app.approvals.service import Attachment
from app.approvals.wording import iso
from app.gateway.exchange import Exchange
from app.gateway.respond import Headers, send_error, send_json
from app.jsonrpc import HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, Message, MessageError, dumps, result_response
from app.protocol import MCP_NAME
from app.tasks.model import TaskRequest, TaskView
from app.tasks.service import TaskNotFound, Tasks
from app.types import JSONObject

EXTENSION: Final = "io.modelcontextprotocol/tasks"
"""The extension's identifier, in `capabilities.extensions` on both sides."""
TASK_METHODS: Final = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
"""The extension's requests; each names its task in `Mcp-Name`."""
NOT_FOUND_TEXT: Final = "Failed to retrieve task: task not found or expired"


def declares(params: JSONObject) -> bool:
    """Whether this request's client capabilities declare the tasks extension."""
    extensions = _extensions(params)
    return extensions is not None and EXTENSION in extensions


def _extensions(params: JSONObject) -> dict[str, Any] | None:
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return extensions if isinstance(extensions, dict) else None


def with_extension(message: JSONObject) -> JSONObject:
    """An upstream's `server/discover` answer with the tasks extension added (the tasks are Airlock's)."""
    result = message.get("result")
    if not isinstance(result, dict):
        return message
    found = result.get("capabilities")
    capabilities: JSONObject = found if isinstance(found, dict) else {}
    known = capabilities.get("extensions")
    extensions: JSONObject = known if isinstance(known, dict) else {}
    capabilities = {**capabilities, "extensions": {**extensions, EXTENSION: {}}}
    return {**message, "result": {**result, "capabilities": capabilities}}


def params_for_upstream(message: Message) -> str:
    """The call's `params` without the tasks extension in its client capabilities (module docstring)."""
    params = copy.deepcopy(message.params)
    extensions = _extensions(params)
    if extensions is not None:
        extensions.pop(EXTENSION, None)
    return dumps(params).decode("utf-8")


# --------------------------------------------------------------------------- the task, on the wire


def status_of(view: TaskView, outcome: dict[str, Any] | None) -> str:
    """The 2026-07-28 status of a task, given its call's final `result`/`error` member (None: none yet)."""
    if view.row.cancelled_at is not None or (view.approval is not None and view.approval.status is Status.WITHDRAWN):
        return "cancelled"
    if outcome is None:
        return "working"
    return "failed" if "error" in outcome else "completed"


def task_fields(tasks: Tasks, view: TaskView, status: str) -> JSONObject:
    """The fields every task object carries (camelCase wire names; `pollIntervalMs` only while working)."""
    row = view.row
    fields: JSONObject = {
        "taskId": row.id,
        "status": status,
        "statusMessage": view.message(tasks.public_url, tasks.clock.now()),
        "createdAt": iso(row.created_at),
        "lastUpdatedAt": iso(view.updated_at),
        "ttlMs": round((row.expires_at - row.created_at) * 1000),
    }
    if status == "working":
        fields["pollIntervalMs"] = view.poll_interval(tasks.settings.poll_interval_ms)
    return fields


async def detailed(tasks: Tasks, view: TaskView) -> JSONObject:
    """The DetailedTask `tasks/get` answers: the task now, with the call's `result` or `error` once it has one."""
    outcome = await _outcome(tasks, view)
    status = status_of(view, outcome)
    task: JSONObject = {"resultType": "complete", **task_fields(tasks, view, status)}
    if status in ("completed", "failed") and outcome is not None:
        task.update(outcome)
    return task


async def _outcome(tasks: Tasks, view: TaskView) -> dict[str, Any] | None:
    if view.approval is not None:
        return await tasks.outcome(view)
    stored = view.stored  # a 2025-11-25 task of a call the policy allowed, read by the same agent
    if stored is None or stored.message is None:
        return None
    return {key: value for key, value in stored.message.items() if key in ("result", "error")}


# --------------------------------------------------------------------------- tools/call


async def answer_held(exchange: Exchange, message: Message, headers: Headers, attachment: Attachment) -> None:
    """Answer a parked call with its task handle (the same task for an identical retry).

    The approval is committed by now (`Approvals.park`), and so is the task once `for_held`
    returns, so a `tasks/get` sent the moment the client reads this resolves.
    """
    tasks = tasks_of(exchange)
    view = await tasks.for_held(attachment, TaskRequest(ttl_ms=None))
    # A retry may find the approval already decided: the handle then says so (the result is for tasks/get).
    status = status_of(view, await tasks.outcome(view))
    handle = {"resultType": "task", **task_fields(tasks, view, status)}
    await send_json(exchange.send, 200, result_response(message.id, handle), headers)


# --------------------------------------------------------------------------- tasks/*


async def serve_task_request(exchange: Exchange, message: Message) -> None:
    """Answer one of the extension's requests (`TASK_METHODS`) for the calling agent."""
    try:
        task_id = _task_id(message)
        if decode_header_value(exchange.headers.get(MCP_NAME)) != task_id:
            raise MessageError(HEADER_MISMATCH, f"{MCP_NAME} header must be the request's taskId", message.id)
    except MessageError as exc:
        await _fail(exchange, message, exc.code, exc.message)
        return
    if not declares(message.params):
        await _fail(
            exchange,
            message,
            MISSING_REQUIRED_CLIENT_CAPABILITY,
            f"Client did not declare required extension {EXTENSION!r}",
            data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
        )
        return
    try:
        await _serve(exchange, message, task_id)
    except TaskNotFound:
        await _fail(exchange, message, INVALID_PARAMS, NOT_FOUND_TEXT)


async def _serve(exchange: Exchange, message: Message, task_id: str) -> None:
    tasks = tasks_of(exchange)
    if message.method == "tasks/get":
        answer = await detailed(tasks, await tasks.view(task_id, exchange.agent))
    elif message.method == "tasks/cancel":
        # Cooperative: a pending approval is withdrawn; an approved call runs to its own end.
        await tasks.withdraw(task_id, exchange.agent)
        answer = {"resultType": "complete"}
    else:
        # tasks/update: a held call never asks for input, so every answer is to a request it did not make.
        await tasks.view(task_id, exchange.agent)
        answer = {"resultType": "complete"}
    await send_json(exchange.send, 200, result_response(message.id, answer))


def _task_id(message: Message) -> str:
    task_id = message.params.get("taskId")
    if not isinstance(task_id, str) or not task_id:
        raise MessageError(INVALID_PARAMS, "Invalid params: taskId must be a non-empty string", message.id)
    return task_id


async def _fail(exchange: Exchange, message: Message, code: int, text: str, data: JSONObject | None = None) -> None:
    status = ERROR_CODE_HTTP_STATUS.get(code, 400)
    await send_error(exchange.send, status, code, text, request_id=message.id, data=data)


def tasks_of(exchange: Exchange) -> Tasks:
    tasks = exchange.gateway.tasks
    if tasks is None:
        raise MessageError(INTERNAL_ERROR, "Internal error: tasks are not available", None)
    return tasks
