"""Agent OAuth against a real OpenID provider on loopback (npm `oidc-provider`, see tests/oidc_provider).

Provenance: spec (MCP 2025-11-25 / 2026-07-28 authorization: the server is an OAuth 2.1 resource
server; 401 with `resource_metadata`, 403 `insufficient_scope`; tokens must be issued for this
server, RFC 8707; no token passthrough) with RFC 9728 metadata, RFC 9068 JWT access tokens and
RFC 6750 challenges; Airlock-defined (issue 15: the identity claim names the agent; each endpoint
is its own audience; static tokens keep working beside OAuth; key fetches are rate-limited).
"""

from __future__ import annotations

import base64
import json
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from app.asgi import create_app
from app.demo.upstream import DemoMarket, build_app
from app.store import audit as audit_store
from tests.harness import UPSTREAM, AirlockUnderTest, mcp_client, new_task, settings_for_test
from tests.net import free_port, serve
from tests.oidc_provider import OidcProvider, ProviderKey, require_provider
from tests.rawmcp import modern_envelope, modern_headers

ADMIN = "admin-market"
"""A second endpoint in front of the same upstream, requiring `mcp:admin` instead of `mcp:tools`."""


class Endpoints:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.market = f"{self.base}/mcp/{UPSTREAM}"
        self.admin = f"{self.base}/mcp/{ADMIN}"

    def metadata(self, name: str = UPSTREAM) -> str:
        return f"{self.base}/.well-known/oauth-protected-resource/mcp/{name}"


@pytest.fixture
def endpoints() -> Endpoints:
    return Endpoints(free_port())


@pytest.fixture
async def provider(tmp_path: Path, endpoints: Endpoints) -> AsyncIterator[OidcProvider]:
    require_provider()
    started = await OidcProvider(tmp_path, [endpoints.market, endpoints.admin]).start()
    try:
        yield started
    finally:
        started.stop()


class RecordingUpstream:
    """The demo upstream, remembering the `Authorization` and `Cookie` headers it was sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.credentials: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.credentials += [
                (k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() in (b"authorization", b"cookie")
            ]
        await self.app(scope, receive, send)


@pytest.fixture
async def upstream(market: DemoMarket) -> AsyncIterator[tuple[str, RecordingUpstream]]:
    recording = RecordingUpstream(build_app(market))
    async with serve(recording) as url:
        yield f"{url}/mcp", recording


StartOAuthAirlock = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
async def start_oauth_airlock(
    tmp_path: Path, endpoints: Endpoints, upstream: tuple[str, RecordingUpstream], database_url: str
) -> AsyncIterator[StartOAuthAirlock]:
    """`await start_oauth_airlock(issuer, **oauth)`: Airlock on `endpoints.port` with `[oauth]` for `issuer`."""
    async with AsyncExitStack() as stack:

        async def start(issuer: str, **oauth: Any) -> AirlockUnderTest:
            settings = settings_for_test(
                tmp_path,
                upstream[0],
                database_url,
                port=endpoints.port,
                public_url=endpoints.base,
                upstreams=[
                    {"name": name, "url": upstream[0], "policy": str(tmp_path / "policy.json")}
                    for name in (UPSTREAM, ADMIN)
                ],
                oauth={
                    "issuer": issuer,
                    "required_scopes": ["mcp:tools"],
                    "upstreams": {ADMIN: {"required_scopes": ["mcp:admin"]}},
                    **oauth,
                },
            )
            app = create_app(settings)
            url = await stack.enter_async_context(serve(app, port=endpoints.port))
            return AirlockUnderTest(
                url=url, app=app, settings=settings, policy_path=tmp_path / "policy.json", stack=stack
            )

        yield start


@pytest.fixture
async def airlock(start_oauth_airlock: StartOAuthAirlock, provider: OidcProvider) -> AirlockUnderTest:
    return await start_oauth_airlock(provider.issuer)


async def tools_list(url: str, token: str | None) -> httpx.Response:
    headers = modern_headers(token or "", "tools/list")
    if token is None:
        del headers["authorization"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_envelope()}}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, json=body, headers=headers)


def assert_refused(response: httpx.Response, endpoints: Endpoints, description: str, **expected: str) -> None:
    name, scope = expected.get("name", UPSTREAM), expected.get("scope", "mcp:tools")
    error = expected.get("error", "invalid_token")
    assert response.status_code == (403 if error == "insufficient_scope" else 401), response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer error="{error}", error_description="{description}", '
        f'resource_metadata="{endpoints.metadata(name)}", scope="{scope}"'
    )


async def audited_agents(airlock: AirlockUnderTest) -> list[str]:
    await airlock.runtime.audit.flush()
    async with airlock.runtime.db.read() as conn:
        rows = await audit_store.search(conn, newest_first=False, limit=100, event="call")
        return [row.agent or "" for row in rows]


# --------------------------------------------------------------------------- the allowed path


async def test_a_client_credentials_token_for_the_endpoint_calls_tools_under_the_agent_its_sub_names(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    token = await provider.token(endpoints.market, client="agent-2")
    async with mcp_client(endpoints.market, token, mode=mode) as client:
        result = await client.call_tool("em_get_task", {"task_id": task.id})
    assert not result.is_error
    assert await audited_agents(airlock) == ["agent-2"]


async def test_static_tokens_keep_working_beside_oauth(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    task = new_task(market)
    async with airlock.client("static-bot") as client:
        assert not (await client.call_tool("em_get_task", {"task_id": task.id})).is_error
    assert await audited_agents(airlock) == ["static-bot"]


async def test_the_identity_claim_is_configurable(
    start_oauth_airlock: StartOAuthAirlock, provider: OidcProvider, endpoints: Endpoints, market: DemoMarket
) -> None:
    airlock = await start_oauth_airlock(provider.issuer, identity_claim="client_id")
    token = provider.sign(endpoints.market, sub="someone-else", client_id="ci-runner")
    async with mcp_client(endpoints.market, token) as client:
        await client.call_tool("em_get_task", {"task_id": new_task(market).id})
    assert await audited_agents(airlock) == ["ci-runner"]


async def test_the_agents_token_is_never_sent_upstream(
    airlock: AirlockUnderTest,
    provider: OidcProvider,
    endpoints: Endpoints,
    market: DemoMarket,
    upstream: tuple[str, RecordingUpstream],
) -> None:
    """Spec: "MUST NOT pass through the token it received from the MCP client"."""
    token = await provider.token(endpoints.market)
    async with mcp_client(endpoints.market, token) as client:
        await client.call_tool("em_get_task", {"task_id": new_task(market).id})
    async with airlock.client("static-bot") as client:
        await client.call_tool("em_get_task", {"task_id": new_task(market).id})
    assert upstream[1].credentials == []


# --------------------------------------------------------------------------- discovery


async def test_a_request_without_a_token_is_challenged_with_the_endpoints_metadata(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints
) -> None:
    response = await tools_list(endpoints.admin, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{endpoints.metadata(ADMIN)}", scope="mcp:admin"'
    )
    async with httpx.AsyncClient(timeout=10) as http:
        metadata = (await http.get(endpoints.metadata(ADMIN))).json()
        root = (await http.get(f"{endpoints.base}/.well-known/oauth-protected-resource")).json()
    assert metadata == {
        "resource": endpoints.admin,
        "authorization_servers": [provider.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": f"Airlock ({ADMIN})",
        "scopes_supported": ["mcp:admin"],
    }
    assert (root["resource"], root["authorization_servers"]) == (endpoints.base, [provider.issuer])


async def test_an_unknown_static_token_is_challenged_with_the_metadata_too(
    airlock: AirlockUnderTest, endpoints: Endpoints
) -> None:
    response = await tools_list(endpoints.market, "alk_agent_" + secrets.token_urlsafe(32))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", resource_metadata="{endpoints.metadata()}", scope="mcp:tools"'
    )


async def test_the_official_sdk_client_authorizes_itself_from_airlocks_url_alone(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints, market: DemoMarket
) -> None:
    """The Python SDK's client_credentials provider: 401 → PRM → AS metadata → token (resource = endpoint) → call."""

    class Memory:
        tokens: OAuthToken | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return None

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            pass

    storage = Memory()
    auth = ClientCredentialsOAuthProvider(
        endpoints.market, storage, client_id="agent-2", client_secret="secret-2", issuer=provider.issuer
    )
    task = new_task(market)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
            async with Client(streamable_http_client(endpoints.market, http_client=http)) as client:
                assert not (await client.call_tool("em_get_task", {"task_id": task.id})).is_error
    assert storage.tokens is not None
    claims = json.loads(base64.urlsafe_b64decode(storage.tokens.access_token.split(".")[1] + "=="))
    assert (claims["aud"], claims["scope"]) == (endpoints.market, "mcp:tools")
    assert await audited_agents(airlock) == ["agent-2"]


# --------------------------------------------------------------------------- refusals


async def test_a_token_for_another_endpoint_is_refused(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints
) -> None:
    """RFC 8707: a token minted for /mcp/admin-market is no good at /mcp/execution-market."""
    token = await provider.token(endpoints.admin, scope="mcp:tools mcp:admin")
    assert (await tools_list(endpoints.admin, token)).status_code == 200
    assert_refused(await tools_list(endpoints.market, token), endpoints, "the token was not issued for this endpoint")


async def test_a_token_from_another_issuer_is_refused(
    airlock: AirlockUnderTest, tmp_path: Path, endpoints: Endpoints
) -> None:
    other = await OidcProvider(tmp_path, [endpoints.market, endpoints.admin]).start()
    try:
        token = await other.token(endpoints.market)
    finally:
        other.stop()
    response = await tools_list(endpoints.market, token)
    assert_refused(response, endpoints, f"the token was not issued by {airlock.settings.oauth.issuer}")  # type: ignore[union-attr]
    assert airlock.runtime.oauth is not None and airlock.runtime.oauth.keys.fetches == 0


@pytest.mark.parametrize(
    ("lifetime", "not_before", "accepted", "description"),
    [
        (-120, None, False, "the token has expired"),
        (-10, None, True, ""),  # expired 10 s ago: within the 30 s leeway
        (600, +120, False, "the token is not valid yet"),
        (600, +10, True, ""),
    ],
)
async def test_exp_and_nbf_are_checked_with_the_leeway(
    airlock: AirlockUnderTest,
    provider: OidcProvider,
    endpoints: Endpoints,
    lifetime: int,
    not_before: int | None,
    accepted: bool,
    description: str,
) -> None:
    import time

    token = provider.sign(
        endpoints.market, lifetime=lifetime, not_before=None if not_before is None else time.time() + not_before
    )
    response = await tools_list(endpoints.market, token)
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert_refused(response, endpoints, description)


async def test_a_token_whose_payload_was_altered_is_refused(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints
) -> None:
    header, payload, signature = (await provider.token(endpoints.market)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "admin"}).encode()).rstrip(b"=").decode()
    assert_refused(
        await tools_list(endpoints.market, f"{header}.{forged}.{signature}"),
        endpoints,
        "the token's signature does not verify",
    )


@pytest.mark.parametrize(
    ("make", "description"),
    [
        (
            lambda p, aud: p.key.sign({"iss": p.issuer, "sub": "a", "aud": aud, "exp": 2**40}, typ="JWT"),
            "the token is not an access token (its typ is not at+jwt)",
        ),
        (
            lambda p, aud: jwt_hs256(p.issuer, aud),
            "the token's signing algorithm is not one of RS256, PS256, ES256, EdDSA",
        ),
        (
            lambda p, aud: jwt_none(p.issuer, aud),
            "the token's signing algorithm is not one of RS256, PS256, ES256, EdDSA",
        ),
        (lambda p, aud: p.sign(aud, sub=""), "the token has no usable sub claim to name its agent"),
        (lambda p, aud: "not-a-jwt", "the token is not a JWT access token"),
    ],
    ids=["an ID token (typ JWT)", "HS256", "alg none", "no subject", "not a JWT"],
)
async def test_tokens_that_are_not_signed_access_tokens_are_refused(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints, make: Any, description: str
) -> None:
    assert_refused(await tools_list(endpoints.market, make(provider, endpoints.market)), endpoints, description)


def jwt_hs256(issuer: str, audience: str) -> str:
    import jwt

    claims = {"iss": issuer, "sub": "a", "aud": audience, "exp": 2**40}
    return jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"typ": "at+jwt"})


def jwt_none(issuer: str, audience: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return (
        f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part({'iss': issuer, 'sub': 'a', 'aud': audience, 'exp': 2**40})}."
    )


async def test_a_valid_token_without_the_required_scope_gets_403_naming_the_scopes(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints
) -> None:
    no_scope = await provider.token(endpoints.market, scope=None)
    assert_refused(
        await tools_list(endpoints.market, no_scope),
        endpoints,
        "the token lacks a scope this endpoint requires",
        error="insufficient_scope",
    )
    tools_only = await provider.token(endpoints.admin, scope="mcp:tools")
    assert_refused(
        await tools_list(endpoints.admin, tools_only),
        endpoints,
        "the token lacks a scope this endpoint requires",
        error="insufficient_scope",
        name=ADMIN,
        scope="mcp:admin",
    )


# --------------------------------------------------------------------------- keys


async def test_after_a_key_rotation_the_new_key_is_fetched_once_and_accepted(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints
) -> None:
    assert (await tools_list(endpoints.market, await provider.token(endpoints.market))).status_code == 200
    await provider.restart(ProviderKey(kid="rotated"))
    rotated = await provider.token(endpoints.market)
    for _ in range(3):
        assert (await tools_list(endpoints.market, rotated)).status_code == 200
    assert airlock.runtime.oauth is not None and airlock.runtime.oauth.keys.fetches == 2


async def test_tokens_with_unknown_kids_cannot_make_airlock_fetch_keys_per_request(
    airlock: AirlockUnderTest, provider: OidcProvider, endpoints: Endpoints
) -> None:
    """Issue 15: the JWKS is refetched on an unknown kid, "never on every request"."""
    assert (await tools_list(endpoints.market, await provider.token(endpoints.market))).status_code == 200
    for _ in range(20):
        forged = ProviderKey(kid=secrets.token_hex(8), private=provider.key.private)
        forged_token = forged.sign({"iss": provider.issuer, "sub": "x", "aud": endpoints.market, "exp": 2**40})
        assert_refused(
            await tools_list(endpoints.market, forged_token),
            endpoints,
            "the token is signed with a key its issuer does not publish",
        )
    assert airlock.runtime.oauth is not None and airlock.runtime.oauth.keys.fetches == 2  # first use + one refetch
