"""CSRF protection: every state-changing inbox request needs the session's token and a same-site origin.

Provenance: Airlock-defined (issue: web approval inbox, "CSRF protection on every state-changing
request"); the pure checks table-driven, then the refusals over HTTP against Airlock under uvicorn.
"""

from __future__ import annotations

import pytest

from app.demo.upstream import DemoMarket
from app.inbox import csrf
from tests.harness import AirlockUnderTest
from tests.inbox.conftest import csrf_of, held_call, sign_in, web_client

OWN = {"http://127.0.0.1:8080", "https://airlock.example"}


@pytest.mark.parametrize(
    ("expected", "supplied", "origin", "fetch_site", "refused"),
    [
        ("tok", "tok", None, None, None),
        ("tok", "tok", "https://airlock.example", "same-origin", None),
        ("tok", "tok", "https://AIRLOCK.example:443", None, None),
        ("tok", None, None, None, csrf.MISSING_TOKEN),
        (None, "tok", None, None, csrf.MISSING_TOKEN),
        ("tok", "other", None, None, csrf.WRONG_TOKEN),
        ("tok", "tok", "https://evil.example", None, "came from another site"),
        ("tok", "tok", "null", None, "came from another site"),
        ("tok", "tok", "http://airlock.example", None, "came from another site"),
        ("tok", "tok", None, "cross-site", "came from another site"),
    ],
)
def test_refusal_needs_the_session_token_and_a_same_site_origin(
    expected: str | None, supplied: str | None, origin: str | None, fetch_site: str | None, refused: str | None
) -> None:
    reason = csrf.refusal(expected=expected, supplied=supplied, origin=origin, fetch_site=fetch_site, own_origins=OWN)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


async def test_a_decision_without_the_csrf_token_is_refused_and_decides_nothing(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (_call, approval):
        await sign_in(client, airlock)
        missing = await client.post(f"/inbox/{approval['id']}/approve")
        wrong = await client.post(f"/inbox/{approval['id']}/approve", data={"csrf_token": "guess"})
        as_json = await client.post(
            f"/inbox/{approval['id']}/reject", data={"reason": "x"}, headers={"Accept": "application/json"}
        )
        assert [a["id"] for a in await airlock.approvals("pending")] == [approval["id"]]
    assert missing.status_code == 403 and "carried no CSRF token" in missing.text
    assert wrong.status_code == 403 and "does not match your session" in wrong.text
    assert as_json.status_code == 403 and "CSRF" in as_json.json()["error"]


async def test_a_decision_posted_from_another_site_is_refused_even_with_the_token(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (_call, approval):
        token = await sign_in(client, airlock)
        response = await client.post(
            f"/inbox/{approval['id']}/approve", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
        )
        assert len(await airlock.approvals("pending")) == 1
    assert response.status_code == 403 and "came from another site (https://evil.example)" in response.text


async def test_the_csrf_token_may_come_as_a_header_for_the_script(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (call, approval):
        token = await sign_in(client, airlock)
        response = await client.post(
            f"/inbox/{approval['id']}/approve",
            headers={"X-CSRF-Token": token, "Accept": "application/json", "Origin": airlock.url},
        )
        await call
    assert response.status_code == 200, response.text
    assert response.json()["approval"]["status"] in ("approved", "executing", "completed")


async def test_sign_in_and_sign_out_need_the_csrf_token_too(airlock: AirlockUnderTest) -> None:
    token = await airlock.reviewer_token("alice")
    async with web_client(airlock) as client:
        await client.get("/inbox/-/login")
        sign_in_without = await client.post("/inbox/-/login", data={"name": "alice", "token": token})
        csrf_token = await sign_in(client, airlock)
        sign_out_without = await client.post("/inbox/-/logout")
        still_in = await client.get("/inbox")
    assert sign_in_without.status_code == 403 and "set-cookie" not in sign_in_without.headers
    assert sign_out_without.status_code == 403
    assert still_in.status_code == 200 and csrf_of(still_in.text) == csrf_token


async def test_signing_in_issues_a_new_csrf_token(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        form = await client.get("/inbox/-/login")
        signed_in = await sign_in(client, airlock)
    assert csrf_of(form.text) != signed_in
