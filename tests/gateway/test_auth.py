"""Agent authentication at `/mcp/{upstream}`: bearer tokens, 401 challenges, revocation, hashed storage.

Provenance: spec (2025-11-25 authorization: invalid or missing tokens get 401, tokens only in the
`Authorization` header, never the query string) with RFC 6750 `WWW-Authenticate` challenges;
Airlock-defined (agent and reviewer tokens are separate; identity comes from the token only;
only SHA-256 hashes are stored).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from app.demo.upstream import DemoMarket
from app.store.models import agent_tokens, audit_log, reviewers
from tests.harness import AirlockUnderTest, copy_database, new_task, running_airlock, settings_for_test
from tests.net import serve, wait_for
from tests.rawmcp import ACCEPT, LEGACY_VERSION, MODERN_VERSION, modern_envelope

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
MODERN_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_envelope()}}
JSON_HEADERS = {"accept": ACCEPT, "content-type": "application/json"}
MODERN_HEADERS = {**JSON_HEADERS, "mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/list"}
CHALLENGE = 'Bearer realm="airlock"'
INVALID_TOKEN = 'Bearer realm="airlock", error="invalid_token"'

REQUESTS = {
    "handshake POST": ("POST", INITIALIZE, JSON_HEADERS),
    "modern POST": ("POST", MODERN_LIST, MODERN_HEADERS),
    "handshake GET": ("GET", None, {"accept": "text/event-stream", "mcp-session-id": "whatever"}),
    "DELETE": ("DELETE", None, {"mcp-session-id": "whatever"}),
}


async def send(
    airlock: AirlockUnderTest,
    name: str,
    authorization: str | None,
    *,
    path: str | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    method, body, headers = REQUESTS[name]
    headers = dict(headers)
    if authorization is not None:
        headers["authorization"] = authorization
    # A new connection per request: `tests.net.serve` sockets lack TCP_NODELAY (see test_malformed).
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        return await http.request(
            method,
            path or airlock.mcp_url,
            headers=headers,
            params=params,
            content=None if body is None else json.dumps(body).encode(),
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> AsyncIterator[AirlockUnderTest]:
    """One Airlock (SQLite) for the stateless, table-driven checks of this module."""
    from app.demo.upstream import build_app

    tmp_path = tmp_path_factory.mktemp("auth")
    async with serve(build_app(DemoMarket(examples=False))) as upstream:
        database = copy_database(sqlite_template, tmp_path / "airlock.db")
        async with running_airlock(settings_for_test(tmp_path, f"{upstream}/mcp", database)) as airlock:
            yield airlock


def assert_unauthorized(response: httpx.Response, challenge: str) -> None:
    assert response.status_code == 401, (response.request.method, response.request.headers, response.text)
    assert response.headers["www-authenticate"] == challenge
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32600
    assert body["error"]["message"].startswith("Unauthorized")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "Token abc",
        "Bearer two words",
        "alk_agent_abc",
    ],
    ids=["absent", "empty", "bearer-only", "basic", "token-scheme", "two-words", "no-scheme"],
)
async def test_a_request_without_a_usable_bearer_token_gets_401_with_a_challenge(
    shared: AirlockUnderTest, request_name: str, authorization: str | None
) -> None:
    assert_unauthorized(await send(shared, request_name, authorization), CHALLENGE)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize("token", ["alk_agent_made-up", "x" * 300, "not-even-the-right-shape"])
async def test_an_unknown_token_gets_401_with_error_invalid_token(
    shared: AirlockUnderTest, request_name: str, token: str
) -> None:
    assert_unauthorized(await send(shared, request_name, f"Bearer {token}"), INVALID_TOKEN)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_scheme_is_case_insensitive_and_a_valid_token_is_accepted(shared: AirlockUnderTest) -> None:
    token = await shared.agent_token()
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await send(shared, "handshake POST", f"{scheme} {token}")
        assert response.status_code == 200, (scheme, response.text)
    assert (await send(shared, "modern POST", f"Bearer {token}")).status_code == 200


@pytest.mark.asyncio(loop_scope="module")
async def test_a_token_in_the_query_string_is_not_accepted(shared: AirlockUnderTest) -> None:
    token = await shared.agent_token()
    response = await send(shared, "handshake POST", None, params={"access_token": token, "token": token})
    assert_unauthorized(response, CHALLENGE)


@pytest.mark.asyncio(loop_scope="module")
async def test_authentication_comes_before_revealing_whether_an_upstream_exists(shared: AirlockUnderTest) -> None:
    unknown = f"{shared.url}/mcp/no-such-upstream"
    assert_unauthorized(await send(shared, "handshake POST", None, path=unknown), CHALLENGE)
    assert_unauthorized(await send(shared, "handshake POST", "Bearer nope", path=unknown), INVALID_TOKEN)
    token = await shared.agent_token()
    found = await send(shared, "handshake POST", f"Bearer {token}", path=unknown)
    assert found.status_code == 404


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("request_name", ["handshake POST", "modern POST"])
async def test_a_revoked_token_stops_working_and_the_agents_other_tokens_do_not(
    shared: AirlockUnderTest, request_name: str
) -> None:
    first = await shared.runtime.credentials.issue_agent_token("agent-r")
    second = await shared.runtime.credentials.issue_agent_token("agent-r")
    assert (await send(shared, request_name, f"Bearer {first.token}")).status_code == 200
    assert await shared.runtime.credentials.revoke(token_id=first.id) == 1
    assert_unauthorized(await send(shared, request_name, f"Bearer {first.token}"), INVALID_TOKEN)
    assert (await send(shared, request_name, f"Bearer {second.token}")).status_code == 200
    assert await shared.runtime.credentials.revoke(agent="agent-r") == 1
    assert_unauthorized(await send(shared, request_name, f"Bearer {second.token}"), INVALID_TOKEN)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_revoked_token_cannot_use_a_session_it_opened(shared: AirlockUnderTest) -> None:
    issued = await shared.runtime.credentials.issue_agent_token("agent-s")
    headers = {**JSON_HEADERS, "authorization": f"Bearer {issued.token}"}
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        opened = await http.post(shared.mcp_url, json=INITIALIZE, headers=headers)
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": LEGACY_VERSION}
        await shared.runtime.credentials.revoke(token_id=issued.id)
        listed = await http.post(
            shared.mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers={**headers, **session}
        )
    assert_unauthorized(listed, INVALID_TOKEN)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_reviewer_token_is_not_an_agent_token(shared: AirlockUnderTest) -> None:
    reviewer = await shared.reviewer_token("alice")
    for request_name in ("handshake POST", "modern POST"):
        assert_unauthorized(await send(shared, request_name, f"Bearer {reviewer}"), INVALID_TOKEN)


async def test_the_identity_comes_from_the_token_whatever_the_call_claims(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """Arguments, `_meta` and headers that name another agent change nothing about who is asking."""
    token = await airlock.agent_token("intern-bot")
    task = new_task(market)
    envelope = {
        **modern_envelope(),
        "agent": "boss",
        "io.modelcontextprotocol/clientInfo": {"name": "boss", "version": "0"},
    }
    publish = {
        "name": "em_publish_task",
        "_meta": envelope,
        "arguments": {"title": "t", "description": "d", "bounty_usd": 5, "agent_id": "boss", "agent": "boss"},
    }
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": publish}
    headers = {
        **JSON_HEADERS,
        "authorization": f"Bearer {token}",
        "mcp-protocol-version": MODERN_VERSION,
        "mcp-method": "tools/call",
        "mcp-name": "em_publish_task",
        "x-airlock-agent": "boss",
        "x-agent": "boss",
        "from": "boss",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        denied = await http.post(airlock.mcp_url, json=call, headers=headers)
        cancel = {
            **call,
            "id": 2,
            "params": {
                **publish,
                "name": "em_cancel_task",
                "arguments": {"task_id": task.id, "reason": "x", "agent_id": "boss"},
            },
        }
        async with http.stream(
            "POST", airlock.mcp_url, json=cancel, headers={**headers, "mcp-name": "em_cancel_task"}
        ) as held:
            assert held.status_code == 200
            await wait_for(lambda: _pending(airlock), timeout=10)
            [approval] = await airlock.approvals("pending")
    assert denied.status_code == 200
    assert "interns cannot publish" in denied.json()["result"]["content"][0]["text"]
    assert approval["agent"] == "intern-bot"
    assert market.calls == {}
    await airlock.runtime.audit.flush()
    async with airlock.runtime.db.read() as conn:
        agents = {row.agent for row in await conn.execute(select(audit_log.c.agent))}
    assert agents == {"intern-bot"}


async def _pending(airlock: AirlockUnderTest) -> bool:
    return bool(await airlock.approvals("pending"))


async def test_tokens_are_stored_only_as_sha256_hashes(airlock: AirlockUnderTest, database_url: str) -> None:
    agent = await airlock.runtime.credentials.issue_agent_token("hash-check")
    reviewer = await airlock.runtime.credentials.add_reviewer("hash-reviewer")
    async with airlock.runtime.db.read() as conn:
        agent_rows = [dict(row._mapping) for row in await conn.execute(select(agent_tokens))]
        reviewer_rows = [dict(row._mapping) for row in await conn.execute(select(reviewers))]
    stored = json.dumps([agent_rows, reviewer_rows], default=str)
    for issued in (agent, reviewer):
        assert issued.token not in stored
        assert issued.token[len("alk_agent_") + 4 :] not in stored
    assert any(row["token_hash"] == _sha256(agent.token) for row in agent_rows)
    assert any(row["token_hash"] == _sha256(reviewer.token) for row in reviewer_rows)
    assert {row["prefix"] for row in agent_rows if row["agent"] == "hash-check"} == {agent.token[:14]}
    if database_url.startswith("sqlite"):
        raw = _sqlite_bytes(Path(database_url.split(":///", 1)[1]))
        assert agent.token.encode() not in raw and reviewer.token.encode() not in raw


def _sqlite_bytes(database: Path) -> bytes:
    """Every byte SQLite holds for `database`: the file and its write-ahead log or journal."""
    files = [database, Path(f"{database}-wal"), Path(f"{database}-journal")]
    return b"".join(path.read_bytes() for path in files if path.exists())


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
