"""Malformed and hostile traffic on the wire: the right JSON-RPC error with the right HTTP status,
never a 500, and nothing forwarded that could be read two ways.

Provenance: spec (JSON-RPC 2.0 error codes; Streamable HTTP statuses: 400/404 for sessions, 403 for
a foreign Origin, 406/415; the 2026-07-28 validation ladder's -32602/-32020/-32022 and 405 for
GET/DELETE, as the official SDK's `mcp.shared.inbound` answers them) plus Airlock-defined strictness
(duplicate keys, lone surrogates, NaN, overflowing numbers and integers beyond ±(2**53 - 1) are
refused; 413 past `max_body_bytes`).

One Airlock (on the suite's database) serves the whole module, in front of the demo upstream
wrapped in a recorder: every test starts with an empty record, so "nothing was forwarded" is
checked on the upstream's side of the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.demo.upstream import DemoMarket, build_app
from tests.conftest import ON_POSTGRES
from tests.gateway.test_relay import RecordingUpstream
from tests.harness import copy_database, new_task, running_airlock, settings_for_test
from tests.net import serve
from tests.rawmcp import ACCEPT, LEGACY_VERSION, MODERN_VERSION, RawSession, modern_envelope

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMIT = 16384
FOREIGN_ORIGIN = "https://evil.example"
ALLOWED_ORIGIN = "https://agent-ui.example"
FRESH_CONNECTIONS = httpx.Limits(max_keepalive_connections=0)
"""A new connection per request: `tests.net.serve` sockets lack TCP_NODELAY, so a kept-alive
connection pays a ~40 ms Nagle/delayed-ACK stall on every request after the first."""


@dataclass
class Gateway:
    url: str
    base: str
    market: DemoMarket
    upstream: RecordingUpstream
    token: str
    other_token: str
    http: httpx.AsyncClient
    session: RawSession

    def handshake_headers(self, **extra: str) -> dict[str, str]:
        return self.session.headers(**extra)

    def modern_headers(self, method: str = "tools/call", name: str | None = None, **extra: str) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {self.token}",
            "accept": ACCEPT,
            "content-type": "application/json",
            "mcp-protocol-version": MODERN_VERSION,
            "mcp-method": method,
        }
        if name is not None:
            headers["mcp-name"] = name
        headers.update(extra)
        return headers

    def headers(self, era: str, method: str = "tools/call", name: str | None = None) -> dict[str, str]:
        return self.handshake_headers() if era == "handshake" else self.modern_headers(method, name)

    async def post(
        self, era: str, raw: bytes, *, method: str = "tools/call", name: str | None = None, **extra: str
    ) -> httpx.Response:
        headers = {**self.headers(era, method, name), **extra}
        return await self.http.post(self.url, content=raw, headers=headers)

    def forwarded(self) -> list[bytes]:
        return self.upstream.posts()


@pytest.fixture(scope="module")
def module_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The suite's database for this module: a SQLite copy, or the session's PostgreSQL schema emptied."""
    if not ON_POSTGRES:
        template = request.getfixturevalue("sqlite_template")
        return copy_database(template, tmp_path_factory.mktemp("malformed-db") / "airlock.db")
    from tests import pg

    url = str(request.getfixturevalue("postgres_schema"))
    asyncio.run(pg.truncate_all(url))
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    tmp_path = tmp_path_factory.mktemp("malformed")
    market = DemoMarket(examples=False)
    upstream = RecordingUpstream(build_app(market))
    async with serve(upstream) as upstream_base, httpx.AsyncClient(timeout=10, limits=FRESH_CONNECTIONS) as http:
        settings = settings_for_test(
            tmp_path, f"{upstream_base}/mcp", module_database, max_body_bytes=LIMIT, allowed_origins=[ALLOWED_ORIGIN]
        )
        async with running_airlock(settings) as airlock:
            token = await airlock.agent_token("agent-1")
            session = RawSession(http, airlock.mcp_url, token)
            await session.initialize()
            yield Gateway(
                airlock.mcp_url,
                airlock.url,
                market,
                upstream,
                token,
                await airlock.agent_token("agent-2"),
                http,
                session,
            )


@pytest.fixture(autouse=True)
def clean_record(gateway: Gateway) -> None:
    gateway.upstream.requests.clear()
    gateway.market.calls.clear()
    gateway.market.log.clear()


ERAS = pytest.mark.parametrize("era", ["handshake", "modern"])


def envelope(era: str) -> dict[str, Any]:
    return {"_meta": modern_envelope()} if era == "modern" else {}


def request(era: str, method: str, params: dict[str, Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), **envelope(era)}}


def tool_call(era: str, name: str = "em_get_task", arguments: Any = None, request_id: Any = 1) -> dict[str, Any]:
    return request(era, "tools/call", {"name": name, "arguments": arguments or {"task_id": "t"}}, request_id)


def encode(message: Any) -> bytes:
    return json.dumps(message).encode()


def assert_error(response: httpx.Response, status: int, code: int, request_id: Any = None) -> dict[str, Any]:
    """The response is the HTTP status and a well-formed JSON-RPC error with `code`; returns the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"jsonrpc", "id", "error"} and body["jsonrpc"] == "2.0", body
    assert body["id"] == request_id, body
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str), body
    error: dict[str, Any] = body["error"]
    return error


def assert_nothing_ran(gateway: Gateway) -> None:
    assert gateway.forwarded() == [], "nothing may reach the upstream"
    assert gateway.market.calls == {}


# --------------------------------------------------------------------------- -32700: not one JSON document


def spliced(era: str, arguments: str) -> bytes:
    """A `tools/call` of em_get_task whose `arguments` are the given JSON text."""
    meta = ',"_meta":' + json.dumps(modern_envelope()) if era == "modern" else ""
    return (
        f'{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"em_get_task","arguments":{arguments}{meta}}}}}'
    ).encode()


PARSE_ERRORS: dict[str, Any] = {
    "empty body": lambda era: b"",
    "truncated": lambda era: encode(tool_call(era))[:-1],
    "trailing garbage": lambda era: encode(tool_call(era)) + b"x",
    "two documents": lambda era: encode(tool_call(era)) * 2,
    "byte-order mark": lambda era: b"\xef\xbb\xbf" + encode(tool_call(era)),
    "invalid UTF-8": lambda era: spliced(era, '{"task_id":"\\u00ff"}').replace(b"\\u00ff", b"\xff"),
    "UTF-16": lambda era: json.dumps(tool_call(era)).encode("utf-16"),
    "lone surrogate": lambda era: spliced(era, '{"task_id":"\\ud800"}'),
    "reversed surrogate pair": lambda era: spliced(era, '{"task_id":"\\ude00\\ud83d"}'),
    "NaN": lambda era: spliced(era, '{"task_id":NaN}'),
    "Infinity": lambda era: spliced(era, '{"task_id":Infinity}'),
    "-Infinity": lambda era: spliced(era, '{"task_id":-Infinity}'),
    "1e400": lambda era: spliced(era, '{"task_id":1e400}'),
    "5000-digit integer": lambda era: spliced(era, '{"task_id":' + "9" * 5000 + "}"),
    "integer a double cannot hold": lambda era: spliced(era, '{"task_id":9007199254740993}'),
    "nesting deeper than 64": lambda era: spliced(era, '{"task_id":' + "[" * 70 + "]" * 70 + "}"),
    "nesting that would blow the stack": lambda era: b"[" * 3000,
    "single quotes": lambda era: b"{'jsonrpc': '2.0'}",
    "trailing comma": lambda era: spliced(era, '{"task_id":"t",}'),
    "control character in a string": lambda era: spliced(era, '{"task_id":"a\tb"}'),
    "comment": lambda era: b"// hi\n" + encode(tool_call(era)),
}


@ERAS
@pytest.mark.parametrize("case", sorted(PARSE_ERRORS))
async def test_a_body_that_is_not_one_strict_json_document_is_a_parse_error_and_goes_nowhere(
    gateway: Gateway, era: str, case: str
) -> None:
    raw = PARSE_ERRORS[case](era)
    response = await gateway.post(era, raw, name="em_get_task")
    error = assert_error(response, 400, -32700)
    assert error["message"].startswith("Parse error")
    assert_nothing_ran(gateway)


DUPLICATES = {
    "two names": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task","arguments":'
    '{"task_id":"%s"},"name":"em_cancel_task"%s}}',
    "name spelled with an escape": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task",'
    '"arguments":{"task_id":"%s"},"na\\u006de":"em_cancel_task"%s}}',
    "two argument objects": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_cancel_task",'
    '"arguments":{"task_id":"%s","reason":"x"},"arguments":{"task_id":"x","reason":"y"}%s}}',
    "an argument twice": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task",'
    '"arguments":{"task_id":"%s","task_id":"other"}%s}}',
    "two methods": '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"em_cancel_task",'
    '"arguments":{"task_id":"%s","reason":"x"}%s},"method":"tools/call"}',
    "two params": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task",'
    '"arguments":{"task_id":"%s"}%s},"params":{"name":"em_cancel_task"}}',
    "two ids": '{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"em_get_task",'
    '"arguments":{"task_id":"%s"}%s}}',
}


@ERAS
@pytest.mark.parametrize("case", sorted(DUPLICATES))
async def test_a_duplicate_key_is_refused_and_the_upstream_never_runs_anything(
    gateway: Gateway, era: str, case: str
) -> None:
    task = new_task(gateway.market)
    meta = ',"_meta":' + json.dumps(modern_envelope()) if era == "modern" else ""
    raw = (DUPLICATES[case] % (task.id, meta)).encode()
    for name in ("em_get_task", "em_cancel_task"):
        response = await gateway.post(era, raw, name=name)
        error = assert_error(response, 400, -32700)
        assert "duplicate key" in error["message"]
    assert_nothing_ran(gateway)
    assert gateway.market.tasks[task.id].status == "published"


@ERAS
@pytest.mark.parametrize(
    ("before", "after"), [(b" ", b""), (b"\r\n\t ", b"\n"), (b"", b" \r\n")], ids=["space", "crlf-tab", "trailing"]
)
async def test_json_whitespace_around_the_document_is_allowed(
    gateway: Gateway, era: str, before: bytes, after: bytes
) -> None:
    task = new_task(gateway.market)
    raw = before + encode(tool_call(era, arguments={"task_id": task.id})) + after
    response = await gateway.post(era, raw, name="em_get_task")
    assert response.status_code == 200, response.text
    assert gateway.forwarded()[-1:] == [raw] and gateway.market.calls == {"em_get_task": 1}


# --------------------------------------------------------------------------- -32600: not one JSON-RPC message


INVALID_REQUESTS: dict[str, tuple[bytes, Any]] = {
    "jsonrpc missing": (b'{"id":1,"method":"tools/list","params":{}}', 1),
    "jsonrpc 1.0": (b'{"jsonrpc":"1.0","id":1,"method":"tools/list","params":{}}', 1),
    "jsonrpc as a number": (b'{"jsonrpc":2.0,"id":"a","method":"tools/list","params":{}}', "a"),
    "batch of one": (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}]', None),
    "empty batch": (b"[]", None),
    "number": (b"42", None),
    "string": (b'"tools/list"', None),
    "null": (b"null", None),
    "true": (b"true", None),
    "id null": (b'{"jsonrpc":"2.0","id":null,"method":"tools/list","params":{}}', None),
    "id float": (b'{"jsonrpc":"2.0","id":1.5,"method":"tools/list","params":{}}', None),
    "id boolean": (b'{"jsonrpc":"2.0","id":true,"method":"tools/list","params":{}}', None),
    "id object": (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list","params":{}}', None),
    "id array": (b'{"jsonrpc":"2.0","id":[1],"method":"tools/list","params":{}}', None),
    "method empty": (b'{"jsonrpc":"2.0","id":1,"method":"","params":{}}', 1),
    "method a number": (b'{"jsonrpc":"2.0","id":1,"method":5,"params":{}}', 1),
    "request with result": (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{},"result":{}}', 1),
    "request with error": (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{},"error":{}}', 1),
    "neither": (b'{"jsonrpc":"2.0","id":1}', 1),
    "response with result and error": (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', 1),
    "response without id": (b'{"jsonrpc":"2.0","result":{}}', None),
}


@ERAS
@pytest.mark.parametrize("case", sorted(INVALID_REQUESTS))
async def test_valid_json_that_is_not_one_json_rpc_message_is_an_invalid_request(
    gateway: Gateway, era: str, case: str
) -> None:
    raw, request_id = INVALID_REQUESTS[case]
    response = await gateway.post(era, raw, method="tools/list")
    error = assert_error(response, 400, -32600, request_id)
    assert error["message"].startswith("Invalid Request")
    assert_nothing_ran(gateway)


@ERAS
async def test_a_tools_call_without_an_id_is_refused_not_forwarded_unjudged(gateway: Gateway, era: str) -> None:
    """A notification cannot be answered with a verdict, so a `tools/call` one is not a way around the policy."""
    task = new_task(gateway.market)
    message = tool_call(era, "em_cancel_task", {"task_id": task.id, "reason": "x"})
    del message["id"]
    response = await gateway.post(era, encode(message), name="em_cancel_task")
    error = assert_error(response, 400, -32600)
    assert "tools/call" in error["message"]
    assert_nothing_ran(gateway)
    assert gateway.market.tasks[task.id].status == "published"


async def test_a_modern_client_cannot_send_a_response(gateway: Gateway) -> None:
    response = await gateway.post("modern", b'{"jsonrpc":"2.0","id":1,"result":{}}', method="tools/list")
    assert_error(response, 400, -32600, 1)
    assert_nothing_ran(gateway)


# --------------------------------------------------------------------------- -32602: invalid params


INVALID_PARAMS: dict[str, Any] = {
    "no name": {"arguments": {"task_id": "t"}},
    "empty name": {"name": "", "arguments": {}},
    "name a number": {"name": 7, "arguments": {}},
    "name null": {"name": None, "arguments": {}},
    "arguments a list": {"name": "em_get_task", "arguments": ["t"]},
    "arguments a string": {"name": "em_get_task", "arguments": "task_id=t"},
    "arguments a number": {"name": "em_get_task", "arguments": 1},
}


@ERAS
@pytest.mark.parametrize("case", sorted(INVALID_PARAMS))
async def test_a_tools_call_with_invalid_params_is_refused_with_32602(gateway: Gateway, era: str, case: str) -> None:
    message = request(era, "tools/call", INVALID_PARAMS[case], request_id="r-1")
    name = message["params"].get("name")
    response = await gateway.post(era, encode(message), name=None if name is None else str(name))
    if era == "modern" and isinstance(name, int):
        # The 2026-07-28 ladder compares Mcp-Name first, and no header can equal a number.
        assert_error(response, 400, -32020, "r-1")
    else:
        error = assert_error(response, 400, -32602, "r-1")
        assert error["message"].startswith("Invalid params")
    assert_nothing_ran(gateway)


@ERAS
@pytest.mark.parametrize("params", [[1, 2], "p", 5, None], ids=["array", "string", "number", "null"])
async def test_params_that_are_not_an_object_are_invalid_params(gateway: Gateway, era: str, params: Any) -> None:
    raw = encode({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params})
    response = await gateway.post(era, raw)
    assert_error(response, 400, -32602, 3)
    assert_nothing_ran(gateway)


async def test_a_handshake_tools_call_without_params_is_invalid_params(gateway: Gateway) -> None:
    response = await gateway.post("handshake", b'{"jsonrpc":"2.0","id":4,"method":"tools/call"}')
    assert_error(response, 400, -32602, 4)
    assert_nothing_ran(gateway)


# --------------------------------------------------------------------------- unknown methods


@ERAS
@pytest.mark.parametrize("method", ["no/such/method", "Tools/Call", "tools/call/x", "rpc.discover"])
async def test_an_unknown_method_is_forwarded_and_the_upstreams_answer_relayed(
    gateway: Gateway, era: str, method: str
) -> None:
    raw = encode(request(era, method, {}, request_id="u-1"))
    response = await gateway.post(era, raw, method=method)
    assert response.status_code in (200, 404), response.text
    assert gateway.forwarded() == [raw]
    answer = _last_json_rpc(response)
    assert answer["id"] == "u-1" and answer["error"]["code"] == -32601
    assert gateway.market.calls == {}


def _last_json_rpc(response: httpx.Response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("application/json"):
        message: dict[str, Any] = response.json()
        return message
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    message = json.loads(data[-1])
    return message


@ERAS
async def test_an_unknown_notification_is_forwarded_and_accepted(gateway: Gateway, era: str) -> None:
    raw = encode({"jsonrpc": "2.0", "method": "notifications/made_up", "params": {"x": 1, **envelope(era)}})
    response = await gateway.post(era, raw, method="notifications/made_up")
    assert response.status_code == 202 and response.content == b""
    assert gateway.forwarded() == [raw]


# --------------------------------------------------------------------------- HTTP-level refusals


@ERAS
async def test_a_declared_body_over_the_limit_is_413_before_it_is_read(gateway: Gateway, era: str) -> None:
    raw = spliced(era, json.dumps({"task_id": "x" * LIMIT}))
    response = await gateway.post(era, raw, name="em_get_task")
    error = assert_error(response, 413, -32600)
    assert str(LIMIT) in error["message"]
    assert_nothing_ran(gateway)


@ERAS
async def test_a_streamed_body_over_the_limit_is_413(gateway: Gateway, era: str) -> None:
    raw = spliced(era, json.dumps({"task_id": "x" * LIMIT}))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    response = await gateway.http.post(gateway.url, content=chunks(), headers=gateway.headers(era, name="em_get_task"))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, -32600)
    assert_nothing_ran(gateway)


@ERAS
async def test_a_body_just_under_the_limit_is_served(gateway: Gateway, era: str) -> None:
    task = new_task(gateway.market)
    raw = spliced(era, json.dumps({"task_id": task.id}))
    raw = raw[:-1] + b',"pad":"' + b"x" * (LIMIT - len(raw) - 9) + b'"}'
    assert len(raw) == LIMIT
    response = await gateway.post(era, raw, name="em_get_task")
    assert response.status_code == 200, response.text
    assert gateway.market.calls == {"em_get_task": 1}


@ERAS
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json-patch+json",
        "multipart/form-data",
        "application/json; charset=utf-16",
        "application/json; charset=latin-1",
    ],
)
async def test_a_body_that_is_not_declared_as_utf8_json_is_415(
    gateway: Gateway, era: str, content_type: str | None
) -> None:
    headers = gateway.headers(era, name="em_get_task")
    del headers["content-type"]
    if content_type is not None:
        headers["content-type"] = content_type
    response = await gateway.http.post(gateway.url, content=encode(tool_call(era)), headers=headers)
    assert_error(response, 415, -32600)
    assert_nothing_ran(gateway)


@ERAS
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", 'application/json;charset="UTF-8"']
)
async def test_json_content_types_are_accepted(gateway: Gateway, era: str, content_type: str) -> None:
    task = new_task(gateway.market)
    response = await gateway.post(
        era,
        encode(tool_call(era, arguments={"task_id": task.id})),
        name="em_get_task",
        **{"content-type": content_type},
    )
    assert response.status_code == 200, response.text
    assert gateway.market.calls == {"em_get_task": 1}


@ERAS
@pytest.mark.parametrize("accept", ["", "application/json", "text/event-stream", "text/html", "image/*"])
async def test_a_post_that_does_not_accept_both_json_and_sse_is_406(gateway: Gateway, era: str, accept: str) -> None:
    headers = {**gateway.headers(era, name="em_get_task"), "accept": accept}
    response = await gateway.http.post(gateway.url, content=encode(tool_call(era)), headers=headers)
    assert_error(response, 406, -32600)
    assert_nothing_ran(gateway)


@ERAS
@pytest.mark.parametrize("origin", [FOREIGN_ORIGIN, "null", "http://127.0.0.1.evil.example", "file://"])
async def test_a_foreign_origin_is_403_whatever_the_request(gateway: Gateway, era: str, origin: str) -> None:
    for method in ("POST", "GET", "DELETE"):
        headers = {**gateway.headers(era, name="em_get_task"), "origin": origin}
        response = await gateway.http.request(method, gateway.url, content=encode(tool_call(era)), headers=headers)
        assert_error(response, 403, -32600)
    assert_nothing_ran(gateway)


@ERAS
async def test_a_dns_rebinding_page_whose_origin_matches_the_host_header_is_403(gateway: Gateway, era: str) -> None:
    """A rebinding page at attacker.example:PORT resolves to Airlock, so its Origin equals Host: refused."""
    headers = {**gateway.headers(era, name="em_get_task"), "origin": gateway.base}
    response = await gateway.http.post(gateway.url, content=encode(tool_call(era)), headers=headers)
    assert_error(response, 403, -32600)
    assert_nothing_ran(gateway)


@ERAS
async def test_the_public_origin_allowed_origins_and_no_origin_are_served(gateway: Gateway, era: str) -> None:
    for origin in ("http://127.0.0.1:8080", ALLOWED_ORIGIN, None):
        task = new_task(gateway.market)
        headers = gateway.headers(era, name="em_get_task")
        if origin is not None:
            headers["origin"] = origin
        response = await gateway.http.post(
            gateway.url, content=encode(tool_call(era, arguments={"task_id": task.id})), headers=headers
        )
        assert response.status_code == 200, (origin, response.text)
    assert gateway.market.calls == {"em_get_task": 3}


@ERAS
async def test_an_unknown_upstream_is_404(gateway: Gateway, era: str) -> None:
    for path in ("/mcp/no-such-upstream", "/mcp/execution-market-2", "/mcp/EXECUTION-MARKET"):
        response = await gateway.http.post(
            gateway.base + path, content=encode(tool_call(era)), headers=gateway.headers(era, name="em_get_task")
        )
        assert_error(response, 404, -32600)
    assert_nothing_ran(gateway)


# --------------------------------------------------------------------------- 2026-07-28 ladder


async def test_a_modern_request_without_the_envelope_is_32602(gateway: Gateway) -> None:
    for params in (
        {"name": "em_get_task", "arguments": {}},
        {"name": "em_get_task", "_meta": {}},
        {"name": "em_get_task", "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION}},
        {"name": "em_get_task", "_meta": "envelope"},
    ):
        raw = encode({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params})
        error = assert_error(await gateway.post("modern", raw, name="em_get_task"), 400, -32602, 5)
        assert "_meta" in error["message"]
    raw = encode({"jsonrpc": "2.0", "id": 6, "method": "tools/list"})
    assert_error(await gateway.post("modern", raw, method="tools/list"), 400, -32602, 6)
    assert_nothing_ran(gateway)


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        ({"mcp-method": "tools/list"}, "mcp-method"),
        ({"mcp-method": "TOOLS/CALL"}, "mcp-method"),
        ({"mcp-name": "em_cancel_task"}, "mcp-name"),
        ({"mcp-name": "=?base64?ZW1fY2FuY2VsX3Rhc2s=?="}, "mcp-name"),
        ({"mcp-name": "=?base64?not base64?="}, "mcp-name"),
    ],
)
async def test_a_routing_header_that_disagrees_with_the_body_is_32020(
    gateway: Gateway, headers: dict[str, str], what: str
) -> None:
    response = await gateway.post("modern", encode(tool_call("modern", request_id=8)), name="em_get_task", **headers)
    error = assert_error(response, 400, -32020, 8)
    assert what in error["message"]
    assert_nothing_ran(gateway)


@pytest.mark.parametrize("missing", ["mcp-method", "mcp-name"])
async def test_a_missing_routing_header_is_32020(gateway: Gateway, missing: str) -> None:
    headers = gateway.modern_headers(name="em_get_task")
    del headers[missing]
    response = await gateway.http.post(gateway.url, content=encode(tool_call("modern", request_id=8)), headers=headers)
    assert_error(response, 400, -32020, 8)
    assert_nothing_ran(gateway)


async def test_a_protocol_version_header_that_disagrees_with_the_envelope_is_32020(gateway: Gateway) -> None:
    message = tool_call("modern", request_id=9)
    message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    assert_error(await gateway.post("modern", encode(message), name="em_get_task"), 400, -32020, 9)
    assert_nothing_ran(gateway)


@pytest.mark.parametrize("header", ["mcp-name", "mcp-method", "mcp-protocol-version"])
async def test_a_routing_header_sent_twice_is_32020(gateway: Gateway, header: str) -> None:
    headers = list(gateway.modern_headers(name="em_get_task").items())
    value = dict(headers)[header]
    headers.append((header.upper(), value))
    response = await gateway.http.post(gateway.url, content=encode(tool_call("modern", request_id=10)), headers=headers)
    error = assert_error(response, 400, -32020, 10)
    assert "more than once" in error["message"]
    assert_nothing_ran(gateway)


@pytest.mark.parametrize("version", ["2099-01-01", "2026-07-29", "banana"])
async def test_an_unsupported_version_is_32022_naming_the_supported_ones(gateway: Gateway, version: str) -> None:
    message = tool_call("modern", request_id=11)
    message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = version
    response = await gateway.post("modern", encode(message), name="em_get_task", **{"mcp-protocol-version": version})
    error = assert_error(response, 400, -32022, 11)
    assert error["data"] == {"supported": [MODERN_VERSION], "requested": version}
    assert_nothing_ran(gateway)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
async def test_anything_but_post_is_405_in_the_modern_era(gateway: Gateway, method: str) -> None:
    response = await gateway.http.request(method, gateway.url, headers=gateway.modern_headers())
    assert response.status_code == 405
    if method in ("GET", "DELETE"):
        assert response.headers["allow"] == "POST"
        assert_error(response, 405, -32600)
    assert_nothing_ran(gateway)


# --------------------------------------------------------------------------- handshake-era sessions


LIST = b'{"jsonrpc":"2.0","id":12,"method":"tools/list"}'


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_a_handshake_request_without_a_session_id_is_400(gateway: Gateway, method: str) -> None:
    headers = gateway.handshake_headers()
    del headers["mcp-session-id"]
    response = await gateway.http.request(
        method, gateway.url, headers=headers, content=LIST if method == "POST" else None
    )
    assert_error(response, 400, -32600)
    assert_nothing_ran(gateway)


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
@pytest.mark.parametrize("session_id", ["made-up", "x" * 2000, "ünïcode".encode(), ""])
async def test_an_unknown_session_is_404(gateway: Gateway, method: str, session_id: str | bytes) -> None:
    headers: dict[str, Any] = {**gateway.handshake_headers(), "mcp-session-id": session_id}
    response = await gateway.http.request(
        method, gateway.url, headers=headers, content=LIST if method == "POST" else None
    )
    assert_error(response, 404, -32600)
    assert_nothing_ran(gateway)


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_another_agents_session_is_404(gateway: Gateway, method: str) -> None:
    headers = gateway.handshake_headers(authorization=f"Bearer {gateway.other_token}")
    response = await gateway.http.request(
        method, gateway.url, headers=headers, content=LIST if method == "POST" else None
    )
    assert_error(response, 404, -32600)
    assert_nothing_ran(gateway)


async def test_a_deleted_session_is_404_afterwards(gateway: Gateway) -> None:
    session = RawSession(gateway.http, gateway.url, gateway.token)
    await session.initialize()
    deleted = await gateway.http.delete(gateway.url, headers=session.headers())
    assert deleted.status_code == 200
    gateway.upstream.requests.clear()
    for method in ("POST", "GET", "DELETE"):
        response = await gateway.http.request(
            method, gateway.url, headers=session.headers(), content=LIST if method == "POST" else None
        )
        assert_error(response, 404, -32600)
    assert_nothing_ran(gateway)


async def test_initialize_carrying_a_session_id_is_400(gateway: Gateway) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    response = await gateway.post("handshake", encode(body))
    assert_error(response, 400, -32600, 0)
    assert_nothing_ran(gateway)


async def test_an_unsupported_http_method_is_405_in_the_handshake_era(gateway: Gateway) -> None:
    for method in ("PUT", "PATCH"):
        response = await gateway.http.request(method, gateway.url, headers=gateway.handshake_headers())
        assert response.status_code == 405
    assert_nothing_ran(gateway)


# --------------------------------------------------------------------------- garbage never gets a 500


GARBAGE: list[tuple[str, dict[str, str], bytes]] = [
    ("POST", {}, b"\x00\x01\x02\xff\xfe"),
    ("POST", {}, b"{" * 100_000),
    (
        "POST",
        {},
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task",'
        b'"arguments":{"task_id":{"$gt":""}}}}',
    ),
    ("POST", {}, b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' + b"n" * 3000 + b'"}}'),
    ("POST", {}, b'{"jsonrpc":"2.0","id":' + b"9" * 400 + b',"method":"ping"}'),
    ("POST", {}, b'{"jsonrpc":"2.0","id":"","method":"ping"}'),
    ("POST", {}, b'{"jsonrpc":"2.0","id":-1,"method":"ping","params":{"_meta":{"progressToken":[]}}}'),
    (
        "POST",
        {},
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task",'
        b'"arguments":{},"_meta":{"progressToken":{"a":1}}}}',
    ),
    ("POST", {}, b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5}}'),
    ("POST", {}, b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"x":1}}}'),
    ("POST", {}, b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":true}}'),
    ("POST", {}, b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}'),
    ("POST", {}, b'{"jsonrpc":"2.0","id":99,"result":{"action":"accept"}}'),
    ("POST", {}, b'{"jsonrpc":"2.0","id":99,"error":{"code":"x"}}'),
    ("POST", {"mcp-protocol-version": "../../etc/passwd"}, b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ("POST", {"mcp-protocol-version": ""}, b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ("POST", {"mcp-protocol-version": "2024-11-05"}, b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'),
    ("POST", {"mcp-method": "x" * 5000}, b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ("POST", {"content-length": "0"}, b""),
    ("POST", {"accept": "*/*"}, b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ("POST", {"accept": ",,,;q=x"}, b"{}"),
    ("POST", {"content-type": ";;;"}, b"{}"),
    ("GET", {"last-event-id": "garbage"}, b""),
    ("GET", {"last-event-id": "a" * 41 + ".1"}, b""),
    ("GET", {"last-event-id": "x.99999999999999999999999"}, b""),
    ("GET", {"last-event-id": ".1"}, b""),
    ("DELETE", {"mcp-session-id": "a b"}, b""),
    ("OPTIONS", {}, b""),
    ("HEAD", {}, b""),
]


@ERAS
@pytest.mark.parametrize(
    ("method", "headers", "body"), GARBAGE, ids=[f"{method} {index}" for index, (method, _, _) in enumerate(GARBAGE)]
)
async def test_garbage_never_gets_a_500(
    gateway: Gateway, era: str, method: str, headers: dict[str, str], body: bytes
) -> None:
    request_headers = {**gateway.headers(era, name="em_get_task"), **headers}
    response = await gateway.http.request(method, gateway.url, headers=request_headers, content=body or None)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if (
        method != "HEAD"
        and response.headers.get("content-type", "").startswith("application/json")
        and response.status_code >= 400
    ):
        message = response.json()
        assert message.get("jsonrpc") == "2.0" and isinstance(message["error"]["code"], int), message
    assert gateway.market.calls.get("em_cancel_task", 0) == 0
