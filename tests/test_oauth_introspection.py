"""Agent OAuth with opaque access tokens, looked up at the real oidc-provider's introspection endpoint.

Provenance: spec (RFC 7662 token introspection; RFC 8707: the token must be issued for this
endpoint; MCP authorization: 401 `invalid_token` for a refused token) and Airlock-defined (issue
15: "optionally RFC 7662 introspection for opaque tokens"; answers cached by token hash for a
short time bounded by the token's `exp`, one lookup per token at a time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.config import OAuthSettings
from app.demo.upstream import DemoMarket
from app.oauth.introspection import InactiveToken, Introspector
from app.oauth.jwks import IssuerUnavailable
from tests.harness import UPSTREAM, AirlockUnderTest, mcp_client, new_task, settings_for_test
from tests.net import free_port, serve
from tests.oidc_provider import CLIENTS, OidcProvider, require_provider
from tests.test_oauth import tools_list

RESOURCE_SERVER = {"client_id": "airlock", "client_secret": "airlock-introspects"}
OTHER = "other-market"


class Site:
    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.market = f"{self.base}/mcp/{UPSTREAM}"
        self.other = f"{self.base}/mcp/{OTHER}"


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
async def provider(tmp_path: Path, site: Site) -> AsyncIterator[OidcProvider]:
    require_provider()
    introspecting = {
        **RESOURCE_SERVER,
        "grant_types": ["client_credentials"],
        "redirect_uris": [],
        "response_types": [],
    }
    started = await OidcProvider(
        tmp_path, [site.market, site.other], web_clients=[introspecting], opaque=[site.market, site.other]
    ).start()
    try:
        yield started
    finally:
        started.stop()


def introspector(provider: OidcProvider, *, secret: str = RESOURCE_SERVER["client_secret"]) -> Introspector:
    return Introspector(
        f"{provider.issuer}/token/introspection", RESOURCE_SERVER["client_id"], secret, issuer=provider.issuer
    )


@pytest.fixture
async def airlock(
    tmp_path: Path, site: Site, provider: OidcProvider, upstream_url: str, database_url: str
) -> AsyncIterator[AirlockUnderTest]:
    settings = settings_for_test(
        tmp_path,
        upstream_url,
        database_url,
        port=site.port,
        public_url=site.base,
        upstreams=[
            {"name": name, "url": upstream_url, "policy": str(tmp_path / "policy.json")} for name in (UPSTREAM, OTHER)
        ],
    )
    oauth = OAuthSettings(
        issuer=provider.issuer,
        identity_claim="client_id",
        required_scopes=("mcp:tools",),
        introspection_endpoint=f"{provider.issuer}/token/introspection",
        introspection_client_id=RESOURCE_SERVER["client_id"],
        introspection_client_secret=RESOURCE_SERVER["client_secret"],
    )
    settings = dataclasses.replace(settings, oauth=oauth)
    async with AsyncExitStack() as stack:
        app = create_app(settings)
        url = await stack.enter_async_context(serve(app, port=site.port))
        yield AirlockUnderTest(url=url, app=app, settings=settings, policy_path=tmp_path / "policy.json", stack=stack)


async def test_an_opaque_token_for_the_endpoint_calls_tools_under_the_agent_the_server_names(
    airlock: AirlockUnderTest, provider: OidcProvider, site: Site, market: DemoMarket
) -> None:
    token = await provider.token(site.market, client="agent-2")
    assert token.count(".") != 2, "the provider issued an opaque token"
    async with mcp_client(site.market, token) as client:
        result = await client.call_tool("em_get_task", {"task_id": new_task(market).id})
    assert not result.is_error
    assert airlock.runtime.oauth is not None and airlock.runtime.oauth.introspector is not None


async def test_an_opaque_token_for_another_endpoint_or_unknown_to_the_server_is_refused(
    airlock: AirlockUnderTest, provider: OidcProvider, site: Site
) -> None:
    other = await tools_list(site.market, await provider.token(site.other))
    assert other.status_code == 401
    assert 'error_description="the token was not issued for this endpoint"' in other.headers["www-authenticate"]
    unknown = await tools_list(site.market, secrets.token_urlsafe(32))
    assert unknown.status_code == 401
    assert (
        'error_description="the authorization server says the token is not active"'
        in (unknown.headers["www-authenticate"])
    )


async def test_a_token_is_looked_up_once_however_many_requests_carry_it(provider: OidcProvider, site: Site) -> None:
    lookups = introspector(provider)
    token = await provider.token(site.market)
    answers = await asyncio.gather(*(lookups.claims(token) for _ in range(20)))
    assert {answer["client_id"] for answer in answers} == {"agent-1"}
    assert answers[0]["aud"] == site.market
    await lookups.claims(token)
    assert lookups.requests == 1, "single flight, then the cache"


async def test_a_revoked_token_is_refused_once_its_cached_answer_is_gone(provider: OidcProvider, site: Site) -> None:
    token = await provider.token(site.market)
    async with httpx.AsyncClient(timeout=10) as http:
        revoked = await http.post(
            f"{provider.issuer}/token/revocation", data={"token": token}, auth=("agent-1", CLIENTS["agent-1"])
        )
    assert revoked.status_code == 200
    with pytest.raises(InactiveToken, match="not active"):
        await introspector(provider).claims(token)


async def test_an_endpoint_that_refuses_airlocks_credentials_is_unavailable_not_a_verdict_on_the_token(
    provider: OidcProvider, site: Site
) -> None:
    with pytest.raises(IssuerUnavailable, match="cannot introspect"):
        await introspector(provider, secret="wrong").claims(await provider.token(site.market))
