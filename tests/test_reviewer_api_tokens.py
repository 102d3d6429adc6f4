"""The reviewers' JSON API takes OAuth access tokens from the inbox's identity provider, issued for Airlock.

Provenance: Airlock-defined (issue 15: "the reviewers' JSON API accepts OAuth access tokens from
the issuer (audience: public_url), mapped to reviewers by reviewer_claim, besides reviewer
tokens"), against the real oidc-provider on loopback: its published keys sign the tokens (with
the claims each test needs), and its own client-credentials tokens for another resource are
refused.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.config import InboxOidcSettings
from app.demo.upstream import DemoMarket
from app.store import tokens as token_store
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, settings_for_test
from tests.inbox.conftest import held_call
from tests.net import serve
from tests.oidc_provider import OidcProvider, ProviderKey, require_provider

ALICE = {"email": "alice@example.com", "groups": ["sre", "staff"]}
MCP_RESOURCE = "http://127.0.0.1:1/mcp/execution-market"


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[OidcProvider]:
    require_provider()
    started = await OidcProvider(tmp_path, [MCP_RESOURCE]).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def airlock(
    tmp_path: Path, provider: OidcProvider, upstream_url: str, database_url: str
) -> AsyncIterator[AirlockUnderTest]:
    # Only members of sre may cancel: the token's groups must reach the one decide path.
    rules = [{**r, "reviewer_groups": ["sre"]} if r["id"] == "cancel" else r for r in DEFAULT_POLICY["rules"]]
    settings = settings_for_test(tmp_path, upstream_url, database_url, policy={**DEFAULT_POLICY, "rules": rules})
    oidc = InboxOidcSettings(
        issuer=provider.issuer,
        client_id="airlock-inbox",
        client_secret="unused-here",
        allowed_groups=frozenset({"sre", "staff"}),
    )
    settings = dataclasses.replace(settings, inbox_oidc=oidc)
    app = create_app(settings)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(app))
        yield AirlockUnderTest(url=url, app=app, settings=settings, policy_path=tmp_path / "policy.json", stack=stack)


def token_for(provider: OidcProvider, airlock: AirlockUnderTest, **claims: Any) -> str:
    return provider.sign(airlock.settings.public_url, **{"sub": "u-1", **ALICE, **claims})


async def api(airlock: AirlockUnderTest, token: str, method: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=airlock.url, timeout=10) as http:
        return await http.request(method, path, headers={"Authorization": f"Bearer {token}"})


async def test_a_reviewers_access_token_lists_and_decides_with_the_groups_it_asserts(
    airlock: AirlockUnderTest, provider: OidcProvider, market: DemoMarket
) -> None:
    await airlock.reviewer_token("alice@example.com")  # a reviewer here (as a first inbox sign-in makes them)
    token = token_for(provider, airlock)
    async with held_call(airlock, market) as (call, approval):
        listed = await api(airlock, token, "GET", "/api/approvals?status=pending")
        assert listed.status_code == 200, listed.text
        assert [a["id"] for a in listed.json()["approvals"]] == [approval["id"]]
        decided = await api(airlock, token, "POST", f"/api/approvals/{approval['id']}/approve")
        assert decided.status_code == 200, decided.text
        assert not (await call).is_error
    assert (await airlock.approval(approval["id"]))["decided_by"] == "alice@example.com"


async def test_groups_outside_the_rules_are_refused_by_the_decide_path(
    airlock: AirlockUnderTest, provider: OidcProvider, market: DemoMarket
) -> None:
    await airlock.reviewer_token("alice@example.com")
    staff_only = token_for(provider, airlock, groups=["staff"])  # may review, but the rule wants sre
    async with held_call(airlock, market) as (_call, approval):
        refused = await api(airlock, staff_only, "POST", f"/api/approvals/{approval['id']}/approve")
        assert refused.status_code == 403 and "members of sre" in refused.json()["error"]
        assert (await airlock.approval(approval["id"]))["status"] == "pending"


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"aud": "https://another.example"}, 401, "was not issued for"),
        ({"iss": "https://another-issuer.example"}, 401, "was not issued by"),
        ({"exp": 1_000_000_000}, 401, "has expired"),
        ({"groups": ["marketing"]}, 403, "none of the groups allowed to review"),
        ({"email": "nobody@example.com"}, 403, "is not an enabled reviewer here"),
    ],
)
async def test_tokens_for_another_resource_issuer_time_group_or_person_are_refused(
    airlock: AirlockUnderTest, provider: OidcProvider, change: dict[str, Any], status: int, says: str
) -> None:
    await airlock.reviewer_token("alice@example.com")
    answer = await api(airlock, token_for(provider, airlock, **change), "GET", "/api/approvals")
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


async def test_a_token_signed_by_a_key_the_provider_does_not_publish_is_refused(
    airlock: AirlockUnderTest, provider: OidcProvider
) -> None:
    await airlock.reviewer_token("alice@example.com")
    claims = {"iss": provider.issuer, "aud": airlock.settings.public_url, "exp": 4_000_000_000, **ALICE}
    forged = ProviderKey(kid=provider.key.kid).sign(claims)  # the same kid, another private key
    answer = await api(airlock, forged, "GET", "/api/approvals")
    assert answer.status_code == 401 and "signature does not verify" in answer.json()["error"]


async def test_the_providers_own_token_for_an_mcp_resource_is_not_a_reviewer_token(
    airlock: AirlockUnderTest, provider: OidcProvider
) -> None:
    agent_token = await provider.token(MCP_RESOURCE)
    answer = await api(airlock, agent_token, "GET", "/api/approvals")
    assert answer.status_code == 401 and "was not issued for" in answer.json()["error"]


async def test_a_disabled_reviewer_is_refused_even_with_a_valid_token(
    airlock: AirlockUnderTest, provider: OidcProvider
) -> None:
    await airlock.reviewer_token("alice@example.com")
    async with airlock.runtime.db.write() as conn:  # as `airlock reviewers disable` does
        assert await token_store.disable_reviewer(conn, name="alice@example.com", now=time.time())
    answer = await api(airlock, token_for(provider, airlock), "GET", "/api/approvals")
    assert answer.status_code == 403 and "not an enabled reviewer" in answer.json()["error"]
