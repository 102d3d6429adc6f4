"""The inbox's scoped grants: the approve form offers the grants the rule permits, and the Grants
page lists live grants with a CSRF-checked revoke button.

Provenance: Airlock-defined (issue 18, item 4; docs/inbox.md, "Scoped grants"). The official SDK
client makes the held call; the reviewer uses the inbox over HTTP, as a browser would post it.
"""

from __future__ import annotations

import asyncio

from app.demo.upstream import DemoMarket
from tests.approvals.test_grants import LARGE, granting_policy, other
from tests.conftest import StartAirlock
from tests.inbox.conftest import held_call, sign_in, web_client


async def test_approving_with_a_grant_from_the_inbox_lets_the_identical_call_run_and_the_grants_page_revokes_it(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=granting_policy("identical", "tool", max_minutes=45))
    async with web_client(airlock) as web:
        csrf = await sign_in(web, airlock, "alice")
        async with held_call(airlock, market, tool="em_publish_task", arguments=LARGE) as (call, approval):
            form = (await web.get(f"/inbox/{approval['id']}")).text
            decided = await web.post(
                f"/inbox/{approval['id']}/approve",
                data={"csrf_token": csrf, "grant_minutes": "30", "grant_scope": "tool"},
            )
            async with asyncio.timeout(10):
                assert not (await call).is_error
        listed = (await web.get("/inbox/grants")).text
        grant = await airlock.runtime.approvals.grants.of_approval(approval["id"])
        assert grant is not None
        forged = await web.post(f"/inbox/grants/{grant.id}/revoke", data={"csrf_token": "forged"})
        async with airlock.client() as client, asyncio.timeout(10):
            assert not (await client.call_tool("em_publish_task", other(title="Covered by the tool grant"))).is_error
        revoked = await web.post(f"/inbox/grants/{grant.id}/revoke", data={"csrf_token": csrf})
        again = await web.post(f"/inbox/grants/{grant.id}/revoke", data={"csrf_token": csrf})
        after = (await web.get("/inbox/grants")).text
    assert "and allow any call of this tool from this agent for" in form and "and allow identical calls" in form
    assert '<option value="45">' in form and '<option value="60">' not in form
    assert decided.status_code == 303
    assert grant.scope == "tool" and grant.created_by == "alice"
    assert grant.id in listed and "any call of the tool" in listed
    assert forged.status_code == 403
    assert revoked.status_code == 303
    assert again.status_code == 409 and f"grant {grant.id} was already revoked by alice" in again.text
    assert grant.id not in after and "No live grants." in after
    assert market.calls["em_publish_task"] == 2


async def test_the_approve_form_offers_no_grant_where_the_rule_offers_none_and_refuses_a_forged_one(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=granting_policy())
    async with web_client(airlock) as web:
        csrf = await sign_in(web, airlock, "alice")
        async with held_call(airlock, market) as (call, approval):
            form = (await web.get(f"/inbox/{approval['id']}")).text
            forged = await web.post(
                f"/inbox/{approval['id']}/approve", data={"csrf_token": csrf, "grant_minutes": "30"}
            )
            still = (await airlock.approval(approval["id"]))["status"]
            call.cancel()
    assert 'name="grant_minutes"' not in form
    assert forged.status_code == 400
    assert "offers no grants; approve without one" in forged.text
    assert still == "pending"
