"""Signing in to the inbox: reviewer credentials only, a signed HttpOnly SameSite cookie, sign-out, revocation.

Provenance: Airlock-defined (issue: web approval inbox, "Sign-in"), over HTTP against Airlock under uvicorn.
"""

from __future__ import annotations

import time
from http.cookies import SimpleCookie

import pytest

from app.errors import ConfigError
from app.inbox.session import COOKIE_NAME, SESSION_SECONDS, SessionCookie
from app.store import tokens as token_store
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest
from tests.inbox.conftest import csrf_of, sign_in, web_client


def session_cookie(set_cookie: str) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(set_cookie)
    assert COOKIE_NAME in cookie
    return cookie


async def test_pages_send_a_visitor_who_is_not_signed_in_to_the_sign_in_form_and_back(
    airlock: AirlockUnderTest,
) -> None:
    async with web_client(airlock) as client:
        page = await client.get("/inbox/apr_abc?x=1")
        feed = await client.get("/inbox/-/events")
        assert page.status_code == 303
        assert page.headers["location"] == "/inbox/-/login?next=/inbox/apr_abc%3Fx%3D1"
        assert feed.status_code == 401
        form = await client.get(page.headers["location"])
        assert form.status_code == 200
        assert 'name="next" value="/inbox/apr_abc?x=1"' in form.text
        assert '<label for="name">Reviewer name</label>' in form.text
        assert '<label for="token">Reviewer token</label>' in form.text
        token = await airlock.reviewer_token("alice")
        signed_in = await client.post(
            "/inbox/-/login",
            data={"name": "alice", "token": token, "csrf_token": csrf_of(form.text), "next": "/inbox/apr_abc?x=1"},
        )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/inbox/apr_abc?x=1"


async def test_signing_in_sets_a_signed_httponly_samesite_cookie_with_a_bounded_lifetime(
    airlock: AirlockUnderTest,
) -> None:
    token = await airlock.reviewer_token("alice")
    async with web_client(airlock) as client:
        form = await client.get("/inbox/-/login")
        response = await client.post(
            "/inbox/-/login", data={"name": "alice", "token": token, "csrf_token": csrf_of(form.text)}
        )
        page = await client.get("/inbox")
    cookie = session_cookie(response.headers["set-cookie"])[COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/inbox"
    assert int(cookie["max-age"]) == SESSION_SECONDS
    assert not cookie["secure"], "plain http: a Secure cookie would never come back"
    assert token not in response.headers["set-cookie"]
    assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text


async def test_the_cookie_is_secure_when_the_public_url_is_https(start_airlock: StartAirlock) -> None:
    airlock = await start_airlock(public_url="https://airlock.example")
    async with web_client(airlock) as client:
        form = await client.get("/inbox/-/login")
    cookie = session_cookie(form.headers["set-cookie"])[COOKIE_NAME]
    assert cookie["secure"] is True and cookie["httponly"] is True


async def test_an_agent_token_cannot_sign_in_and_is_told_why(airlock: AirlockUnderTest) -> None:
    agent_token = await airlock.agent_token("agent-1")
    async with web_client(airlock) as client:
        form = await client.get("/inbox/-/login")
        response = await client.post(
            "/inbox/-/login", data={"name": "agent-1", "token": agent_token, "csrf_token": csrf_of(form.text)}
        )
        page = await client.get("/inbox")
    assert response.status_code == 403
    assert "That is an agent token. Agents cannot sign in" in response.text
    assert "set-cookie" not in response.headers
    assert page.status_code == 303, "still signed out"


async def test_a_reviewer_token_signs_in_only_under_its_own_name(airlock: AirlockUnderTest) -> None:
    alice = await airlock.reviewer_token("alice")
    await airlock.reviewer_token("bob")
    async with web_client(airlock) as client:
        form = await client.get("/inbox/-/login")
        as_bob = await client.post(
            "/inbox/-/login", data={"name": "bob", "token": alice, "csrf_token": csrf_of(form.text)}
        )
        unknown = await client.post(
            "/inbox/-/login", data={"name": "alice", "token": "alk_rev_nope", "csrf_token": csrf_of(form.text)}
        )
    assert as_bob.status_code == 401 and "do not belong to an enabled reviewer" in as_bob.text
    assert unknown.status_code == 401


async def test_a_forged_or_altered_cookie_is_no_session(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        value = client.cookies[COOKIE_NAME]
        client.cookies.set(COOKIE_NAME, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/inbox")
        altered = await client.get("/inbox")
        client.cookies.set(COOKIE_NAME, "eyJyIjoiYWxpY2UifQ.forged.signature", path="/inbox")
        forged = await client.get("/inbox")
    assert altered.status_code == 303 and forged.status_code == 303


async def test_signing_out_clears_the_cookie(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        response = await client.post("/inbox/-/logout", data={"csrf_token": csrf})
        after = await client.get("/inbox")
        form = await client.get(response.headers["location"])
    assert response.status_code == 303 and response.headers["location"] == "/inbox/-/login?signed_out=1"
    cleared = session_cookie(response.headers["set-cookie"])[COOKIE_NAME]
    assert cleared.value == "" and int(cleared["max-age"]) == 0
    assert after.status_code == 303
    assert "You are signed out." in form.text


async def test_signing_out_also_ends_a_copy_of_the_cookie_and_other_browsers_sessions(
    airlock: AirlockUnderTest,
) -> None:
    async with web_client(airlock) as client, web_client(airlock) as other_browser:
        csrf = await sign_in(client, airlock)
        await sign_in(other_browser, airlock)
        copied = client.cookies[COOKIE_NAME]
        assert (await client.get("/inbox")).status_code == 200
        await client.post("/inbox/-/logout", data={"csrf_token": csrf})
        client.cookies.set(COOKIE_NAME, copied, path="/inbox")
        replayed_page = await client.get("/inbox")
        replayed_decision = await client.post("/inbox/apr_whatever/approve", data={"csrf_token": csrf})
        other_page = await other_browser.get("/inbox")
    assert replayed_page.status_code == 303
    assert replayed_decision.status_code == 401 and "Your inbox session has ended" in replayed_decision.text
    assert other_page.status_code == 303


async def test_signing_in_again_right_after_signing_out_works(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        await client.post("/inbox/-/logout", data={"csrf_token": csrf})
        await sign_in(client, airlock)
        page = await client.get("/inbox")
    assert page.status_code == 200


async def test_a_disabled_reviewer_is_signed_out_and_can_no_longer_decide(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        async with airlock.runtime.db.write() as conn:
            await token_store.disable_reviewer(conn, name="alice", now=time.time())
        page = await client.get("/inbox")
        decision = await client.post("/inbox/apr_whatever/approve", data={"csrf_token": csrf})
    assert page.status_code == 303
    assert decision.status_code == 401 and "Your inbox session has ended" in decision.text


async def test_rotating_a_reviewer_token_ends_the_sessions_signed_in_with_the_old_one(
    airlock: AirlockUnderTest,
) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        assert await airlock.runtime.credentials.rotate_reviewer_token("alice") is not None
        page = await client.get("/inbox")
    assert page.status_code == 303


async def test_sign_in_never_redirects_to_another_site(airlock: AirlockUnderTest) -> None:
    token = await airlock.reviewer_token("alice")
    for target in ("https://evil.example/", "//evil.example/inbox", "/inbox//evil.example", "/elsewhere"):
        async with web_client(airlock) as client:
            form = await client.get("/inbox/-/login")
            response = await client.post(
                "/inbox/-/login",
                data={"name": "alice", "token": token, "csrf_token": csrf_of(form.text), "next": target},
            )
        assert response.headers["location"] == "/inbox", target


def test_a_secret_key_too_short_to_sign_cookies_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="at least 32 characters"):
        SessionCookie("", path="/inbox", secure=False)
