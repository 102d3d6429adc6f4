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
from app.tasks.extension import EXTENSION, declares, params_for_upstream, with_extension

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
