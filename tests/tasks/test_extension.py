"""The pure parts of the 2026-07-28 tasks extension: who declared it, what `server/discover` says,
and what the upstream is sent.

Provenance: spec (ext-tasks `specification/2026-07-28/tasks.md`) and Airlock-defined (the task is
Airlock's, not the upstream's; `app/tasks/extension.py`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.jsonrpc import parse_message
from app.store.tasks import TaskRow
from app.tasks.extension import EXTENSION, declares, params_for_upstream, status_of, with_extension
from app.tasks.model import TaskView

CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


def params(capabilities: Any) -> dict[str, Any]:
    return {"name": "t", "arguments": {"a": 1}, "_meta": {CAPABILITIES: capabilities}}


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"extensions": {EXTENSION: {}}}, True),
        ({"extensions": {EXTENSION: {}, "x/other": {}}}, True),
        ({"extensions": {"x/other": {}}}, False),
        ({}, False),
        ({"extensions": [EXTENSION]}, False),
        ("nonsense", False),
    ],
)
def test_only_a_request_whose_capabilities_declare_the_extension_gets_tasks(capabilities: Any, expected: bool) -> None:
    assert declares(params(capabilities)) is expected
    assert declares({"name": "t"}) is False


def test_server_discover_keeps_the_upstreams_extensions_and_adds_tasks() -> None:
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"capabilities": {"tools": {}, "extensions": {"x/y": {"a": 1}}}}}
    capabilities = with_extension(answer)["result"]["capabilities"]
    assert capabilities == {"tools": {}, "extensions": {"x/y": {"a": 1}, EXTENSION: {}}}
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}
    assert with_extension(error) == error, "an error is relayed as it is"


def test_the_upstream_is_sent_the_call_without_the_tasks_extension_and_nothing_else_changes() -> None:
    sent = params({"extensions": {EXTENSION: {}, "x/other": {"k": 2}}, "roots": {}})
    raw = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": sent}).encode()
    upstream = json.loads(params_for_upstream(parse_message(raw)))
    assert upstream == params({"extensions": {"x/other": {"k": 2}}, "roots": {}})
    assert EXTENSION in sent["_meta"][CAPABILITIES]["extensions"], "the request itself is not changed"


def row(*, cancelled_at: float | None = None) -> TaskRow:
    return TaskRow(
        id="tsk_x",
        agent="a",
        upstream="u",
        tool="t",
        approval_id=None,
        result=None,
        note=None,
        lease_until=None,
        cancelled_at=cancelled_at,
        created_at=0.0,
        updated_at=0.0,
        expires_at=10.0,
    )


@pytest.mark.parametrize(
    ("outcome", "cancelled_at", "status"),
    [
        (None, None, "working"),
        ({"result": {"content": [], "isError": True}}, None, "completed"),
        ({"result": {"content": []}}, None, "completed"),
        ({"error": {"code": -32000, "message": "boom"}}, None, "failed"),
        (None, 5.0, "cancelled"),
    ],
)
def test_a_tool_error_is_a_completed_task_and_only_a_json_rpc_error_fails_it(
    outcome: dict[str, Any] | None, cancelled_at: float | None, status: str
) -> None:
    assert status_of(TaskView(row(cancelled_at=cancelled_at), None), outcome) == status
