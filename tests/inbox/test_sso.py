"""Reviewers sign in to the inbox through a real OpenID provider (npm `oidc-provider`), as a browser would.

Provenance: spec (OpenID Connect Core 1.0 §3.1: authorization code flow, `state`, `nonce`, ID token
validation; RFC 7636 PKCE; RFC 9207 `iss`) and Airlock-defined (issue 15: a reviewer claim names
the reviewer, an allowed group admits them, the one decide path and its self-approval check still
apply; static reviewer tokens keep working unless turned off). The provider's own login and
consent pages are driven with an HTTP client that keeps cookies, follows redirects and submits
the forms it is shown.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from starlette.requests import Request

from app.asgi import create_app
from app.config import InboxOidcSettings
from app.demo.upstream import DemoMarket
from app.inbox.admission import NOT_ALLOWED
from app.inbox.session import COOKIE_NAME, SessionCookie
from app.inbox.sso import CODE_REFUSED, STALE_FLOW, WRONG_STATE
from app.oauth.id_token import IdTokenVerifier, InvalidIdToken
from app.store import tokens as token_store
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, settings_for_test
from tests.inbox.conftest import APPROVED, csrf_of, held_call
from tests.net import free_port, serve
from tests.oidc_provider import OidcProvider, ProviderKey, require_provider

CLIENT_ID = "airlock-inbox"
CLIENT_SECRET = "inbox-secret-for-tests"
ACCOUNTS = {
    "alice": {"email": "alice@example.com", "preferred_username": "alice", "groups": ["sre", "staff"]},
    "mallory": {"email": "mallory@example.com", "preferred_username": "mallory", "groups": ["staff"]},
    "bot-owner": {"email": "owner@example.com", "preferred_username": "agent-1", "groups": ["sre"]},
}


class Site:
    """Where Airlock listens (known before it starts: the provider must know its redirect URI)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.callback = f"{self.base}/inbox/-/sso/callback"


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
async def provider(tmp_path: Path, site: Site) -> AsyncIterator[OidcProvider]:
    require_provider()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": [site.callback],
        "scope": "openid email profile groups",
    }
    started = await OidcProvider(tmp_path, [f"{site.base}/mcp/unused"], accounts=ACCOUNTS, web_clients=[client]).start()
    try:
        yield started
    finally:
        started.stop()


StartSsoAirlock = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
async def start_sso_airlock(
    tmp_path: Path, site: Site, provider: OidcProvider, upstream_url: str, database_url: str
) -> AsyncIterator[StartSsoAirlock]:
    """`await start_sso_airlock(**inbox_oidc)`: Airlock on `site.port` with `[inbox.oidc]` for the provider."""
    async with AsyncExitStack() as stack:

        async def start(**oidc: Any) -> AirlockUnderTest:
            settings = settings_for_test(tmp_path, upstream_url, database_url, port=site.port, public_url=site.base)
            defaults: dict[str, Any] = {
                "issuer": provider.issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scopes": ("openid", "email", "profile", "groups"),
                "allowed_groups": frozenset({"sre"}),
            }
            sso = InboxOidcSettings(**{**defaults, **oidc})
            settings = dataclasses.replace(settings, inbox_oidc=sso)
            app = create_app(settings)
            url = await stack.enter_async_context(serve(app, port=site.port))
            return AirlockUnderTest(
                url=url, app=app, settings=settings, policy_path=tmp_path / "policy.json", stack=stack
            )

        yield start


@pytest.fixture
async def airlock(start_sso_airlock: StartSsoAirlock) -> AirlockUnderTest:
    return await start_sso_airlock()


@pytest.fixture
async def web() -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping HTTP client that follows nothing by itself (the tests look at each redirect)."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


class _Form(HTMLParser):
    """The first form of a page: its action, method and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self.method = values.get("action", ""), values.get("method", "get").lower()
        elif tag == "input" and self.action is not None and not self._done and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        self._done = self._done or tag == "form"


async def to_callback(web: httpx.AsyncClient, response: httpx.Response, login: str) -> str:
    """Follow the provider's pages from `response` as a person would (log in as `login` with any
    password, then consent) until the provider sends the browser to the inbox's callback; its URL."""
    for _ in range(12):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(f"{urlsplit(str(response.url)).scheme}://") and "/inbox/-/sso/callback" in target:
                return target
            response = await web.get(target)
            continue
        assert response.status_code == 200, response.text
        form = _Form()
        form.feed(response.text)
        assert form.action is not None, f"the provider's page has no form:\n{response.text}"
        fields = {**form.fields, **({"login": login, "password": "any"} if "login" in form.fields else {})}
        response = await web.post(urljoin(str(response.url), form.action), data=fields)
    raise AssertionError("the provider never sent the browser back to the inbox")


async def callback_for(web: httpx.AsyncClient, airlock: AirlockUnderTest, login: str) -> str:
    """Start single sign-on at the inbox and go through the provider; the callback URL it returns to."""
    start = await web.get(f"{airlock.url}/inbox/-/sso/login", params={"next": "/inbox"})
    assert start.status_code == 303, start.text
    return await to_callback(web, start, login)


async def sign_in(web: httpx.AsyncClient, airlock: AirlockUnderTest, login: str) -> httpx.Response:
    """The inbox's answer to the provider's redirect back after `login` signed in there."""
    return await web.get(await callback_for(web, airlock, login))


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


# --------------------------------------------------------------------------- signing in


async def test_a_reviewer_in_an_allowed_group_lands_on_the_inbox_and_can_decide(
    airlock: AirlockUnderTest, web: httpx.AsyncClient, market: DemoMarket
) -> None:
    answer = await sign_in(web, airlock, "alice")
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox"
    cookie = answer.headers["set-cookie"]
    assert "airlock_inbox=" in cookie and "HttpOnly" in cookie and "Path=/inbox" in cookie
    page = await web.get(f"{airlock.url}/inbox")
    assert page.status_code == 200
    assert "Signed in as <strong>alice@example.com</strong>" in page.text
    async with held_call(airlock, market) as (_call, approval):
        decided = await web.post(
            f"{airlock.url}/inbox/{approval['id']}/approve",
            data={"csrf_token": csrf_of(page.text)},
            headers={"accept": "application/json"},
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["approval"]["status"] in APPROVED
    assert (await airlock.approval(approval["id"]))["decided_by"] == "alice@example.com"


async def test_the_session_carries_the_reviewers_groups_from_the_provider(
    airlock: AirlockUnderTest, web: httpx.AsyncClient
) -> None:
    """The same kind of value as a static reviewer's configured groups: a set of names on the reviewer."""
    await sign_in(web, airlock, "alice")
    value = web.cookies.get(COOKIE_NAME, path="/inbox") or ""
    request = Request({"type": "http", "headers": [(b"cookie", f"{COOKIE_NAME}={value}".encode())]})
    session = SessionCookie(airlock.settings.secret_key, path="/inbox", secure=False).read(request)
    assert session is not None and session.reviewer == "alice@example.com"
    assert session.groups == frozenset({"sre", "staff"})


async def test_signing_out_ends_the_single_sign_on_session_and_copies_of_its_cookie(
    airlock: AirlockUnderTest, web: httpx.AsyncClient
) -> None:
    await sign_in(web, airlock, "alice")
    page = await web.get(f"{airlock.url}/inbox")
    copy = web.cookies.get("airlock_inbox", path="/inbox")
    out = await web.post(f"{airlock.url}/inbox/-/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/inbox/-/login?signed_out=1"
    assert (await web.get(f"{airlock.url}/inbox")).status_code == 303
    async with httpx.AsyncClient(timeout=10, cookies={"airlock_inbox": copy or ""}) as stolen:
        assert (await stolen.get(f"{airlock.url}/inbox")).headers["location"].startswith("/inbox/-/login")
    again = await sign_in(web, airlock, "alice")
    assert again.status_code == 303, "signing in again after signing out works"


async def test_a_person_in_no_allowed_group_gets_a_clear_403_and_no_session(
    airlock: AirlockUnderTest, web: httpx.AsyncClient
) -> None:
    answer = await sign_in(web, airlock, "mallory")
    assert answer.status_code == 403
    assert NOT_ALLOWED.format(name="mallory@example.com", groups="sre").replace("'", "&#39;") in answer.text
    assert "airlock_inbox=" not in answer.headers.get("set-cookie", "")
    assert (await web.get(f"{airlock.url}/inbox")).status_code == 303, "still signed out"
    async with airlock.runtime.db.read() as conn:
        assert await token_store.reviewer_named(conn, "mallory@example.com") is None, "no reviewer was created"


async def test_a_reviewer_the_provider_no_longer_puts_in_an_allowed_group_is_disabled_at_their_next_sign_in(
    start_sso_airlock: StartSsoAirlock, web: httpx.AsyncClient
) -> None:
    airlock = await start_sso_airlock(allowed_groups=frozenset({"staff"}))
    await airlock.reviewer_token("mallory@example.com")
    answer = await sign_in(web, airlock, "mallory")
    assert answer.status_code == 303, "staff may review here"
    async with airlock.runtime.db.write() as conn:
        await token_store.disable_reviewer(conn, name="mallory@example.com", now=time.time())
    refused = await sign_in(web, airlock, "mallory")
    assert refused.status_code == 403 and "is disabled in Airlock" in refused.text, "never re-enabled by signing in"


async def test_the_self_approval_check_still_applies_to_a_reviewer_named_by_the_provider(
    start_sso_airlock: StartSsoAirlock, web: httpx.AsyncClient, market: DemoMarket
) -> None:
    airlock = await start_sso_airlock(reviewer_claim="preferred_username")
    assert (await sign_in(web, airlock, "bot-owner")).status_code == 303
    page = await web.get(f"{airlock.url}/inbox")
    async with held_call(airlock, market, agent="agent-1") as (_call, approval):
        refused = await web.post(
            f"{airlock.url}/inbox/{approval['id']}/approve",
            data={"csrf_token": csrf_of(page.text)},
            headers={"accept": "application/json"},
        )
    assert refused.status_code == 403
    assert refused.json()["error"] == "Agent-1 made this call and cannot approve it; another reviewer must."


async def test_static_reviewer_tokens_keep_working_beside_single_sign_on_unless_turned_off(
    start_sso_airlock: StartSsoAirlock, web: httpx.AsyncClient
) -> None:
    airlock = await start_sso_airlock()
    form = await web.get(f"{airlock.url}/inbox/-/login")
    assert 'id="sso" href="/inbox/-/sso/login?next=/inbox"' in form.text and 'name="token"' in form.text
    token = await airlock.reviewer_token("bob")
    signed = await web.post(
        f"{airlock.url}/inbox/-/login", data={"name": "bob", "token": token, "csrf_token": csrf_of(form.text)}
    )
    assert signed.status_code == 303


async def test_with_token_sign_in_off_only_single_sign_on_lets_reviewers_in(
    start_sso_airlock: StartSsoAirlock, web: httpx.AsyncClient
) -> None:
    airlock = await start_sso_airlock(token_sign_in=False)
    form = await web.get(f"{airlock.url}/inbox/-/login")
    assert 'id="sso"' in form.text and 'name="token"' not in form.text
    token = await airlock.reviewer_token("bob")
    refused = await web.post(f"{airlock.url}/inbox/-/login", data={"name": "bob", "token": token})
    assert refused.status_code == 403 and "turned off" in refused.text
    assert (await sign_in(web, airlock, "alice")).status_code == 303


async def test_an_unreachable_provider_gets_a_page_saying_so_not_an_error(
    start_sso_airlock: StartSsoAirlock, web: httpx.AsyncClient
) -> None:
    airlock = await start_sso_airlock(issuer=f"http://127.0.0.1:{free_port()}")
    answer = await web.get(f"{airlock.url}/inbox/-/sso/login")
    assert answer.status_code == 503 and "The identity provider cannot be reached now" in answer.text


@pytest.mark.browser
async def test_a_reviewer_signs_in_through_the_providers_pages_in_chromium(
    airlock: AirlockUnderTest, browser: Browser
) -> None:
    context = await browser.new_context(base_url=airlock.url)
    try:
        page = await context.new_page()
        await page.goto("/inbox")
        await page.get_by_role("link", name="Sign in with single sign-on").click()
        await page.locator("input[name=login]").fill("alice")
        await page.locator("input[name=password]").fill("any password")
        await page.locator("button[type=submit]").click()
        await page.get_by_role("button", name="Continue").click()
        await expect(page).to_have_url(f"{airlock.url}/inbox")
        await expect(page.locator(".who")).to_have_text("Signed in as alice@example.com")
    finally:
        await context.close()


async def _sso_in_chromium(page: Page, login: str) -> None:
    await page.goto("/inbox")
    await page.get_by_role("link", name="Sign in with single sign-on").click()
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill("any password")
    await page.locator("button[type=submit]").click()
    await page.get_by_role("button", name="Continue").click()


async def test_in_chromium_a_person_outside_the_allowed_groups_is_refused_and_a_group_restricted_rule_admits_alice(
    airlock: AirlockUnderTest, browser: Browser, market: DemoMarket
) -> None:
    rules = [{**r, "reviewer_groups": ["sre"]} if r["id"] == "cancel" else r for r in DEFAULT_POLICY["rules"]]
    airlock.set_policy({**DEFAULT_POLICY, "rules": rules})
    outsider = await browser.new_context(base_url=airlock.url)
    reviewer = await browser.new_context(base_url=airlock.url)
    try:
        page = await outsider.new_page()
        await _sso_in_chromium(page, "mallory")  # staff only; the inbox admits sre
        await expect(page.locator("main")).to_contain_text("none of the groups allowed to review here (sre)")
        await page.goto("/inbox")
        await expect(page).to_have_url(re.compile(r"/inbox/-/login"))
        page = await reviewer.new_page()
        await _sso_in_chromium(page, "alice")
        async with held_call(airlock, market) as (call, approval):
            card = page.locator(f"#approval-{approval['id']}")
            await card.get_by_role("button", name="Approve").click()
            await expect(page.locator(f"#recent > #approval-{approval['id']}")).to_contain_text(
                "Approved by you (alice@example.com)"
            )
            assert not (await call).is_error
    finally:
        await outsider.close()
        await reviewer.close()


# --------------------------------------------------------------------------- forged and replayed answers


async def test_an_answer_with_another_state_is_refused(airlock: AirlockUnderTest, web: httpx.AsyncClient) -> None:
    callback = await callback_for(web, airlock, "alice")
    answer = await web.get(with_query(callback, state="forged-by-another-site"))
    assert answer.status_code == 400 and WRONG_STATE in answer.text.replace("&#39;", "'")
    assert "airlock_inbox=" not in answer.headers.get("set-cookie", "")
    assert (await web.get(f"{airlock.url}/inbox")).status_code == 303


async def test_an_answer_without_the_flow_cookie_is_refused(airlock: AirlockUnderTest, web: httpx.AsyncClient) -> None:
    """Login CSRF: a code and state sent to someone else's browser sign nobody in there."""
    callback = await callback_for(web, airlock, "alice")
    async with httpx.AsyncClient(timeout=10) as victim:
        answer = await victim.get(callback)
    assert answer.status_code == 400 and STALE_FLOW in answer.text.replace("&#39;", "'")


async def test_a_replayed_code_is_refused(airlock: AirlockUnderTest, web: httpx.AsyncClient) -> None:
    callback = await callback_for(web, airlock, "alice")
    assert (await web.get(callback)).status_code == 303
    replayed = await web.get(callback)
    assert replayed.status_code == 400 and STALE_FLOW in replayed.text.replace("&#39;", "'"), "the flow is used once"
    fresh = await web.get(f"{airlock.url}/inbox/-/sso/login", follow_redirects=False)
    state = parse_qs(urlsplit(fresh.headers["location"]).query)["state"][0]
    answer = await web.get(with_query(callback, state=state))
    assert answer.status_code == 400, "the provider refuses a code used before (and one without its verifier)"
    assert CODE_REFUSED.split("(")[0] in answer.text


async def test_an_answer_naming_another_issuer_is_refused(airlock: AirlockUnderTest, web: httpx.AsyncClient) -> None:
    callback = await callback_for(web, airlock, "alice")
    answer = await web.get(with_query(callback, iss="https://attacker.example"))
    assert answer.status_code == 400 and "names another identity provider" in answer.text


# --------------------------------------------------------------------------- the ID token


@pytest.fixture
def verifier(provider: OidcProvider) -> IdTokenVerifier:
    """The inbox's ID token checks, with the real provider's published keys."""
    return IdTokenVerifier(provider.issuer, CLIENT_ID)


def id_token(provider: OidcProvider, *, key: ProviderKey | None = None, typ: str = "JWT", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": provider.issuer, "sub": "alice", "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": "n-1"}
    return (key or provider.key).sign({**body, **claims}, typ=typ)


async def test_an_id_token_signed_by_the_provider_for_this_client_and_nonce_passes(
    provider: OidcProvider, verifier: IdTokenVerifier
) -> None:
    claims = await verifier.claims(id_token(provider, email="alice@example.com"), "n-1")
    assert claims["email"] == "alice@example.com"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"aud": "another-client"}, "it was issued for another client"),
        ({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}, "it was issued to another client (azp)"),
        ({"nonce": "n-2"}, "its nonce is not the one this sign-in sent"),
        ({"exp": int(time.time()) - 120}, "it has expired"),
        ({"iss": "https://idp.attacker.example"}, "it was not issued by"),
        ({"typ": "at+jwt"}, "it is an access token, not an ID token"),
        ({"nonce": None}, "its nonce is not the one this sign-in sent"),
    ],
)
async def test_an_id_token_for_another_client_sign_in_or_time_is_refused(
    provider: OidcProvider, verifier: IdTokenVerifier, change: dict[str, Any], why: str
) -> None:
    claims = {k: v for k, v in change.items() if k != "typ"}
    token = id_token(provider, typ=str(change.get("typ", "JWT")), **claims)
    with pytest.raises(InvalidIdToken, match=why.replace("(", r"\(").replace(")", r"\)")):
        await verifier.claims(token, "n-1")


async def test_a_tampered_id_token_is_refused(provider: OidcProvider, verifier: IdTokenVerifier) -> None:
    """Another person's claims under a signature the provider made, and the provider's `kid` on another key."""
    header, _payload, signature = id_token(provider, email="mallory@example.com").split(".")
    forged = id_token(provider, email="alice@example.com", exp=int(time.time()) + 299).split(".")[1]
    with pytest.raises(InvalidIdToken, match="its signature does not verify"):
        await verifier.claims(f"{header}.{forged}.{signature}", "n-1")
    stranger = ProviderKey(kid=provider.key.kid)
    with pytest.raises(InvalidIdToken, match="its signature does not verify"):
        await verifier.claims(id_token(provider, key=stranger), "n-1")
    with pytest.raises(InvalidIdToken, match="signed with a key its issuer does not publish"):
        await verifier.claims(id_token(provider, key=ProviderKey(kid="unknown")), "n-1")


async def test_groups_the_provider_asserts_count_for_a_rule_that_names_reviewer_groups(
    start_sso_airlock: StartSsoAirlock, market: DemoMarket
) -> None:
    airlock = await start_sso_airlock(allowed_groups=frozenset({"sre", "staff"}))
    rules = [
        {**rule, "reviewer_groups": ["sre"]} if rule["id"] == "cancel" else rule for rule in DEFAULT_POLICY["rules"]
    ]
    airlock.set_policy({**DEFAULT_POLICY, "rules": rules})
    async with (
        httpx.AsyncClient(timeout=10) as mallory,
        httpx.AsyncClient(timeout=10) as alice,
    ):
        await sign_in(mallory, airlock, "mallory")  # staff only: may sign in, but is not in the rule's group
        await sign_in(alice, airlock, "alice")  # sre, as the provider says; airlock.toml names no groups
        async with held_call(airlock, market) as (_call, approval):
            for web in (mallory, alice):
                page = await web.get(f"{airlock.url}/inbox")
                decided = await web.post(
                    f"{airlock.url}/inbox/{approval['id']}/approve",
                    data={"csrf_token": csrf_of(page.text)},
                    headers={"accept": "application/json"},
                )
                if web is mallory:
                    assert decided.status_code == 403, decided.text
                    assert "members of sre" in decided.json()["error"]
                else:
                    assert decided.status_code == 200, decided.text
    assert (await airlock.approval(approval["id"]))["decided_by"] == "alice@example.com"
