"""The wire side of tasks (2025-11-25): `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel`, and
the `CreateTaskResult` a task-augmented `tools/call` gets, in the handshake era.

The handshake module (`app/gateway/handshake.py`) and the call path (`app/gateway/calls.py`) hook
in here: sessions at 2025-11-25 or later see `capabilities.tasks` in `initialize` and
`execution.taskSupport: "optional"` on tools a rule may hold (never `"required"`: clients would
then refuse plain calls), and a `tools/call` with `params.task` is answered with a task at once,
whether the policy holds it or allows it. Everything else (plain calls, older sessions, the
2026-07-28 era) is untouched.

`tasks/result` blocks until the task is terminal, as the specification requires: an SSE stream
with keep-alive comments, like a held call, bounded by the agent's hold budget; past it, a
JSON-RPC error tells the client to poll `tasks/get`. Unknown ids and other agents' tasks get the
same `-32602` "not found" (nothing confirms another agent's task exists).

Deliberate departure: the `params` sent upstream (or stored for the approval) are re-encoded
from the parsed request without its `task` member, because the task is Airlock's, not the
upstream's; the arguments judged are the arguments sent. Plain calls still go byte for byte.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Final

from app.approvals.service import Attachment
from app.gateway.exchange import Exchange
from app.gateway.relay import until_disconnect
from app.gateway.respond import Headers, end_stream, send_chunk, send_json, start_sse
from app.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, Message, MessageError, dumps, error_response, result_response
from app.protocol import MCP_SESSION_ID
from app.sse import comment, encode
from app.tasks.model import IMMEDIATE_RESPONSE_META, TASKS_SINCE, TaskRequest, TaskView
from app.tasks.service import InvalidCursor, TaskFinished, TaskNotFound, Tasks
from app.types import JSONObject
from app.upstream import forwardable_headers

TASK_METHODS: Final = frozenset({"tasks/get", "tasks/result", "tasks/list", "tasks/cancel"})
CAPABILITY: Final[JSONObject] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
"""`capabilities.tasks` in `initialize`: task-augmented `tools/call`, `tasks/list`, `tasks/cancel`."""


def supports_tasks(protocol_version: str) -> bool:
    return protocol_version >= TASKS_SINCE


# --------------------------------------------------------------------------- the handshake


def with_task_capability(answer: JSONObject) -> JSONObject:
    """An upstream's `initialize` answer with Airlock's `capabilities.tasks` (the tasks are Airlock's)."""
    result = answer.get("result")
    if not isinstance(result, dict) or not supports_tasks(str(result.get("protocolVersion") or "")):
        return answer
    found = result.get("capabilities")
    capabilities: JSONObject = found if isinstance(found, dict) else {}
    return {**answer, "result": {**result, "capabilities": {**capabilities, "tasks": CAPABILITY}}}


def with_task_support(
    transform: Callable[[JSONObject], JSONObject], may_hold: Callable[[str], bool]
) -> Callable[[JSONObject], JSONObject]:
    """A `tools/list` transform that also marks the tools a rule may hold `taskSupport: "optional"`."""

    def mark(message: JSONObject) -> JSONObject:
        message = transform(message)
        result = message.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return message
        tools = [_optional(tool) if _holdable(tool, may_hold) else tool for tool in result["tools"]]
        return {**message, "result": {**result, "tools": tools}}

    return mark


def _holdable(tool: Any, may_hold: Callable[[str], bool]) -> bool:
    return isinstance(tool, dict) and isinstance(tool.get("name"), str) and may_hold(tool["name"])


def _optional(tool: JSONObject) -> JSONObject:
    found = tool.get("execution")
    execution: JSONObject = found if isinstance(found, dict) else {}
    return {**tool, "execution": {**execution, "taskSupport": "optional"}}


# --------------------------------------------------------------------------- tools/call


def params_for_upstream(message: Message) -> str:
    """The call's `params` without its `task` member (see the module docstring)."""
    params = {key: value for key, value in message.params.items() if key != "task"}
    return dumps(params).decode("utf-8")


async def answer_held(
    exchange: Exchange, message: Message, headers: Headers, attachment: Attachment, task: TaskRequest
) -> None:
    """Answer a parked task-augmented call with its task (the same task for an identical retry)."""
    tasks = _tasks(exchange)
    view = await tasks.for_held(attachment, task)
    await _send_created(exchange, message, headers, tasks, view)


async def serve_allowed(
    exchange: Exchange,
    message: Message,
    headers: Headers,
    task: TaskRequest,
    *,
    tool: str,
    upstream_session_id: str | None,
) -> str:
    """Answer an allowed task-augmented call with a new task, then run the call; returns the task id."""
    tasks = _tasks(exchange)
    view = await tasks.for_allowed(exchange.agent, exchange.upstream.name, tool, task)
    forward = forwardable_headers(exchange.headers)
    if upstream_session_id:
        forward[MCP_SESSION_ID] = upstream_session_id
    body = (
        f'{{"jsonrpc":"2.0","id":{json.dumps("airlock-" + view.id)},"method":"tools/call",'
        f'"params":{params_for_upstream(message)}}}'
    ).encode()
    await _send_created(exchange, message, headers, tasks, view)
    tasks.run_allowed(view, exchange.upstream, forward, body)
    return view.id


async def refuse(exchange: Exchange, message: Message, headers: Headers, task: TaskRequest, text: str) -> None:
    """Answer a refused task-augmented call with a task that fails with the refusal as its status message.

    A task-aware client expects a `CreateTaskResult`; given a plain result instead, the
    TypeScript SDK reports "Task creation did not return a task" and the reason is lost.
    """
    tasks = _tasks(exchange)
    name = message.params.get("name")
    view = await tasks.for_allowed(exchange.agent, exchange.upstream.name, str(name), task)
    # Durable before acknowledged: a client that polls the instant it reads the task finds it failed.
    # The answer still reports the task as it began, `working`, as every task must.
    await tasks.refuse(view, text)
    await _send_created(exchange, message, headers, tasks, view)


async def _send_created(exchange: Exchange, message: Message, headers: Headers, tasks: Tasks, view: TaskView) -> None:
    wire = tasks.wire(view)
    result = {"task": wire, "_meta": {IMMEDIATE_RESPONSE_META: wire.get("statusMessage", "")}}
    await send_json(exchange.send, 200, result_response(message.id, result), headers)


# --------------------------------------------------------------------------- tasks/*


async def serve_task_request(exchange: Exchange, message: Message, headers: Headers) -> None:
    """Answer one `tasks/*` request (`TASK_METHODS`) of the calling agent."""
    tasks = _tasks(exchange)
    try:
        if message.method == "tasks/list":
            cursor = message.params.get("cursor")
            views, next_cursor = await tasks.list(exchange.agent, cursor if isinstance(cursor, str) else None)
            listed: JSONObject = {"tasks": [tasks.wire(view) for view in views]}
            if next_cursor is not None:
                listed["nextCursor"] = next_cursor
            await _reply(exchange, message, headers, listed)
            return
        task_id = _task_id(message)
        if message.method == "tasks/get":
            await _reply(exchange, message, headers, tasks.wire(await tasks.view(task_id, exchange.agent)))
        elif message.method == "tasks/cancel":
            await _reply(exchange, message, headers, tasks.wire(await tasks.cancel(task_id, exchange.agent)))
        else:
            await _serve_result(exchange, message, headers, await tasks.view(task_id, exchange.agent))
    except InvalidCursor:
        await _fail(exchange, message, headers, INVALID_PARAMS, "Invalid params: invalid cursor")
    except TaskNotFound:
        await _fail(exchange, message, headers, INVALID_PARAMS, "Invalid params: task not found")
    except TaskFinished as exc:
        await _fail(exchange, message, headers, INVALID_PARAMS, f"Cannot cancel task: it is already {exc.view.status}")


def _task_id(message: Message) -> str:
    task_id = message.params.get("taskId")
    if not isinstance(task_id, str) or not task_id:
        raise MessageError(INVALID_PARAMS, "Invalid params: taskId must be a string", message.id)
    return task_id


async def _serve_result(exchange: Exchange, message: Message, headers: Headers, view: TaskView) -> None:
    tasks = _tasks(exchange)
    if view.is_terminal:
        await send_json(exchange.send, 200, _response(message, await tasks.answer(view)), headers)
        return
    await start_sse(exchange.send, headers)
    if await until_disconnect(exchange.receive, _stream_result(exchange, message, view)):
        await end_stream(exchange.send)


async def _stream_result(exchange: Exchange, message: Message, view: TaskView) -> None:
    """Keep-alives until the task is terminal, then its answer (or, past the hold budget, an error)."""
    tasks = _tasks(exchange)
    approvals = exchange.gateway.settings.approvals
    budget = approvals.agent_hold_seconds.get(exchange.agent) or approvals.hold_seconds
    waiting = asyncio.ensure_future(tasks.wait(view.id, exchange.agent))
    try:
        async with asyncio.timeout(budget):
            while not (await asyncio.wait({waiting}, timeout=approvals.keepalive_seconds))[0]:
                await send_chunk(exchange.send, comment(f"task {view.id} is still working"))
        response = _response(message, await tasks.answer(waiting.result()))
    except TimeoutError:
        text = (
            f"Task {view.id} is still working after {budget:g} s. Poll tasks/get and call tasks/result "
            "once it is completed, failed or cancelled."
        )
        response = error_response(message.id, INTERNAL_ERROR, text)
    finally:
        waiting.cancel()
    await send_chunk(exchange.send, encode(dumps(response).decode("utf-8")))


def _response(message: Message, member: dict[str, Any]) -> JSONObject:
    return {"jsonrpc": "2.0", "id": message.id, **member}


async def _reply(exchange: Exchange, message: Message, headers: Headers, result: JSONObject) -> None:
    await send_json(exchange.send, 200, result_response(message.id, result), headers)


async def _fail(exchange: Exchange, message: Message, headers: Headers, code: int, text: str) -> None:
    await send_json(exchange.send, 200, error_response(message.id, code, text), headers)


def _tasks(exchange: Exchange) -> Tasks:
    tasks = exchange.gateway.tasks
    if tasks is None:
        raise MessageError(INTERNAL_ERROR, "Internal error: tasks are not available", None)
    return tasks
