"""The inbox's pages and decisions over HTTP: what each page shows, the one decision path, and safe rendering.

Provenance: Airlock-defined (issue: web approval inbox), against Airlock under uvicorn in front of
the demo upstream, with calls held by the official `mcp` SDK client.
"""

from __future__ import annotations

import asyncio
import re
from html import unescape
from pathlib import Path

from app.demo.upstream import DemoMarket
from app.inbox.headers import CONTENT_SECURITY_POLICY
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest, new_task
from tests.inbox.conftest import held_call, sign_in, web_client

INBOX_PACKAGE = Path(__file__).parents[2] / "app" / "inbox"


def card_of(html: str, approval_id: str) -> str:
    start = html.index(f'id="approval-{approval_id}"')
    return html[start : html.index("</li>", start)]


async def test_the_pending_page_lists_held_calls_newest_first_with_what_a_reviewer_needs(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with (
            held_call(airlock, market, agent="agent-1") as (_first, older),
            held_call(airlock, market, agent="agent-2") as (_second, newer),
        ):
            page = await client.get("/inbox")
    assert page.status_code == 200
    html = page.text
    assert html.index(newer["id"]) < html.index(older["id"]), "newest first"
    card = card_of(html, older["id"])
    assert "em_cancel_task" in card and "agent-1" in card and "execution-market" in card
    assert "cancelling is irreversible" in card, "the policy's reason"
    assert re.search(r'data-since="[\d.]+"[^>]*>\d+ s ago', card), "age"
    assert re.search(r'data-until="[\d.]+"[^>]*>in (29|30) min', card), "time left"
    assert f"&#34;task_id&#34;: &#34;{older['arguments']['task_id']}&#34;" in card, "arguments, pretty-printed"
    assert ">Approve</button>" in card and ">Reject</button>" in card
    assert f'<label for="reason-{older["id"]}">Your reason for rejecting (shown to the agent)</label>' in card


async def test_a_card_keeps_what_the_agent_sent_apart_from_the_reviewers_decision(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    arguments = {"task_id": new_task(market).id, "reason": "the agent's own reason"}
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with held_call(airlock, market, arguments=arguments) as (_call, approval):
            pending = await client.get("/inbox")
            detail = await client.get(f"/inbox/{approval['id']}")
    card = card_of(pending.text, approval["id"])
    sent = card[card.index('<section class="sent"') : card.index("</section>")]
    yours = card[card.index('<section class="yours"') :]
    assert ">What the agent sent</h3>" in sent and "the agent&#39;s own reason" in sent
    assert "<label" not in sent and "<form" not in sent, "no reviewer input among the agent's arguments"
    assert ">Your decision</h3>" in yours and "the agent&#39;s own reason" not in yours
    assert ">Your reason for rejecting (shown to the agent)</label>" in yours
    assert card.index("What the agent sent") < card.index("Your decision")
    page = detail.text
    assert (
        page.index(">What the agent sent</h3>")
        < page.index("the agent&#39;s own reason")
        < page.index(">Your decision</h2>")
        < page.index(">Your reason for rejecting (shown to the agent)</label>")
    )


async def test_approving_from_the_inbox_resumes_the_held_call_with_the_upstream_result(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (call, approval):
        csrf = await sign_in(client, airlock)
        response = await client.post(f"/inbox/{approval['id']}/approve", data={"csrf_token": csrf})
        async with asyncio.timeout(10):
            result = await call
        detail = await client.get(response.headers["location"])
    assert response.status_code == 303 and response.headers["location"] == f"/inbox/{approval['id']}"
    assert not result.is_error and result.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1
    assert "Approved by you (alice) via the inbox" in detail.text


async def test_rejecting_needs_a_reason_and_the_agent_receives_it(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (call, approval):
        csrf = await sign_in(client, airlock)
        blank = await client.post(f"/inbox/{approval['id']}/reject", data={"csrf_token": csrf, "reason": "  "})
        response = await client.post(
            f"/inbox/{approval['id']}/reject", data={"csrf_token": csrf, "reason": "the task is still needed"}
        )
        async with asyncio.timeout(10):
            result = await call
    assert blank.status_code == 400 and "A rejection needs a reason" in blank.text
    assert response.status_code == 303
    text = " ".join(item.text for item in result.content)
    assert result.is_error and "alice" in text and "the task is still needed" in text
    assert market.calls["em_cancel_task"] == 0


async def test_a_late_decision_is_told_who_decided_first_and_when(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (call, approval):
        csrf = await sign_in(client, airlock)
        assert (await airlock.decide(approval["id"], "approve", reviewer="bob")).status_code == 200
        page = await client.post(f"/inbox/{approval['id']}/reject", data={"csrf_token": csrf, "reason": "no"})
        fetched = await client.post(
            f"/inbox/{approval['id']}/approve", data={"csrf_token": csrf}, headers={"Accept": "application/json"}
        )
        await call
    assert page.status_code == 409
    assert re.search(r"Too late: bob already approved this call via the API at \d{4}-\d\d-\d\d \d\d:\d\d", page.text)
    assert 'class="decide' not in page.text, "no buttons on a decided approval"
    assert fetched.status_code == 409
    body = fetched.json()
    assert body["error"].startswith("Too late: bob already approved")
    assert body["approval"]["pending"] is False and "Approve</button>" not in body["approval"]["html"]
    assert market.calls["em_cancel_task"] == 1


async def test_a_reviewer_cannot_approve_their_own_call_from_the_inbox(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market, agent="alice") as (_call, approval):
        csrf = await sign_in(client, airlock, "alice")
        response = await client.post(f"/inbox/{approval['id']}/approve", data={"csrf_token": csrf})
        assert len(await airlock.approvals("pending")) == 1
    assert response.status_code == 403
    assert "Alice made this call and cannot approve it; another reviewer must." in response.text


async def test_an_unknown_approval_is_a_404_page(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        page = await client.get("/inbox/apr_nosuchthing")
        decision = await client.post("/inbox/apr_nosuchthing/approve", data={"csrf_token": csrf})
    assert page.status_code == 404 and "There is no approval apr_nosuchthing." in page.text
    assert decision.status_code == 404


async def test_the_detail_page_shows_the_whole_timeline_and_the_result(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client, held_call(airlock, market) as (call, approval):
        await sign_in(client, airlock)
        pending = await client.get(f"/inbox/{approval['id']}")
        await airlock.decide(approval["id"], "approve", reviewer="bob")
        await call
        done = await client.get(f"/inbox/{approval['id']}")
    assert pending.status_code == 200 and ">Approve</button>" in pending.text and "No result yet." in pending.text
    timeline = unescape(done.text[done.text.index('class="timeline"') : done.text.index('id="result-title"')])
    steps = re.findall(r"<strong>([a-z ]+)</strong>", timeline)
    assert [s for s in steps if s in ("parked", "notified", "decided", "executed", "delivered")] == [
        "parked",
        "notified",
        "decided",
        "executed",
        "delivered",
    ]
    assert "by bob" in timeline
    assert ">Approve</button>" not in done.text
    assert '"status": "cancelled"' in unescape(done.text), "the upstream's result"
    assert "Approved by bob via the API" in done.text


async def test_attacker_controlled_arguments_are_escaped_and_invisible_characters_shown(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    arguments = {"task_id": new_task(market).id, "reason": "<script>alert(1)</script> \u202eevil\u202c \u200b"}
    async with web_client(airlock) as client, held_call(airlock, market, arguments=arguments) as (_c, approval):
        await sign_in(client, airlock)
        pages = [await client.get("/inbox"), await client.get(f"/inbox/{approval['id']}")]
    for page in pages:
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "\u202e" not in page.text and "\u200b" not in page.text
        assert '>\\u202e</span>evil<span class="hidden-char"' in page.text
        assert 'title="hidden character U+200B ZERO WIDTH SPACE">\\u200b</span>' in page.text


async def test_every_inbox_response_carries_a_strict_csp_and_refuses_framing(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        responses = [
            await client.get("/inbox"),
            await client.get("/inbox/-/login"),
            await client.get("/inbox/-/static/inbox.js"),
        ]
        await sign_in(client, airlock)
        responses += [await client.get("/inbox"), await client.get("/inbox/history")]
    for response in responses:
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert responses[0].headers["cache-control"] == "no-store"
    assert responses[2].status_code == 200 and "javascript" in responses[2].headers["content-type"]
    assert "no-store" not in responses[2].headers.get("cache-control", "")


def test_the_inbox_ships_everything_it_loads_and_needs_no_external_resources() -> None:
    files = [*INBOX_PACKAGE.glob("templates/*.html"), *INBOX_PACKAGE.glob("static/*")]
    assert {f.name for f in files} >= {"base.html", "inbox.css", "inbox.js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path
        assert "@import" not in text and "@font-face" not in text, path
        assert not re.search(r"\son[a-z]+\s*=", text), f"{path}: inline event handler (the CSP forbids them)"
        assert "style=" not in text and "<style" not in text, f"{path}: inline style (the CSP forbids it)"
        if path.suffix == ".html":
            assert "<script>" not in text, f"{path}: inline script (the CSP forbids it)"


async def test_history_filters_approvals_by_status_agent_tool_and_time(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    publish = {"title": "t", "description": "d", "bounty_usd": 500}
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with held_call(airlock, market, agent="agent-1") as (call_1, cancel_1):
            await airlock.decide(cancel_1["id"], "approve", reviewer="bob")
            await call_1
        async with held_call(airlock, market, agent="agent-2") as (call_2, cancel_2):
            await airlock.decide(cancel_2["id"], "reject", reviewer="bob", reason="keep it")
            await call_2
        async with held_call(airlock, market, agent="agent-2", tool="em_publish_task", arguments=publish) as (
            _call_3,
            publish_3,
        ):

            async def shown(**params: str) -> set[str]:
                page = await client.get("/inbox/history", params=params)
                assert page.status_code == 200
                return set(re.findall(r'<tr id="row-(apr_[^"]+)"', page.text))

            assert await shown() == {cancel_1["id"], cancel_2["id"]}, "decided ones by default"
            assert await shown(status="all") == {cancel_1["id"], cancel_2["id"], publish_3["id"]}
            assert await shown(status="rejected") == {cancel_2["id"]}
            assert await shown(status="pending") == {publish_3["id"]}
            assert await shown(status="all", agent="agent-2") == {cancel_2["id"], publish_3["id"]}
            assert await shown(status="all", tool="em_publish_task") == {publish_3["id"]}
            assert await shown(status="all", since="2100-01-01T00:00") == set()
            assert await shown(status="all", until="2000-01-01T00:00") == set()
            assert await shown(status="all", since="2000-01-01T00:00", until="2100-01-01T00:00") == {
                cancel_1["id"],
                cancel_2["id"],
                publish_3["id"],
            }
            bad = await client.get("/inbox/history", params={"status": "nonsense", "since": "yesterday"})
    assert "Unknown status" in bad.text and "From must be a date and time" in bad.text


async def test_history_shows_the_audit_log_with_the_same_filters(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with held_call(airlock, market, agent="agent-2") as (call, approval):
            await airlock.decide(approval["id"], "reject", reviewer="bob", reason="keep it")
            await call
        everything = await client.get("/inbox/history")
        other_agent = await client.get("/inbox/history", params={"agent": "agent-9"})
    audit = everything.text[everything.text.index('id="audit-title"') :]
    for event in ("parked", "decided", "delivered"):
        assert f'<td data-label="Event" class="status">{event}</td>' in audit
    assert f'href="/inbox/{approval["id"]}"' in audit
    assert "No audit entries match these filters." in other_agent.text


async def test_the_inbox_is_served_below_the_path_of_public_url(start_airlock: StartAirlock) -> None:
    airlock = await start_airlock(public_url="http://127.0.0.1:8080/airlock")
    async with web_client(airlock) as client:
        response = await client.get("/inbox")
        form = await client.get("/inbox/-/login")
    assert response.headers["location"] == "/airlock/inbox/-/login?next=/airlock/inbox"
    assert 'action="/airlock/inbox/-/login"' in form.text
    assert 'href="/airlock/inbox/-/static/inbox.css' in form.text
    assert "Path=/airlock/inbox" in form.headers["set-cookie"]


async def test_a_form_larger_than_the_limit_is_refused(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        response = await client.post("/inbox/apr_x/reject", data={"csrf_token": csrf, "reason": "x" * 200_000})
    assert response.status_code == 413


async def test_a_card_shows_the_tools_description_from_the_upstreams_catalog_when_known(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with held_call(airlock, market) as (_call, approval):
            catalog = airlock.runtime.upstreams[approval["upstream"]].catalog
            assert catalog.listed, "the held call made Airlock fetch the upstream's catalog"
            pending = await client.get("/inbox")
            detail = await client.get(f"/inbox/{approval['id']}")
            catalog.descriptions["em_cancel_task"] = "Cancels <b>for good</b>\u202e " + "x" * 400
            marked = await client.get("/inbox")
            del catalog.descriptions["em_cancel_task"]
            unknown = await client.get("/inbox")
    card = card_of(pending.text, approval["id"])
    assert re.search(r'<p class="tool-description">[^<]*Cancellation is permanent', card), card
    assert card.index("tool-description") < card.index("What the agent sent"), "under the tool's name"
    assert '<p class="tool-description">' in detail.text and "Cancellation is permanent" in detail.text
    shown = card_of(marked.text, approval["id"])
    description = shown[shown.index('<p class="tool-description">') :]
    description = description[: description.index("</p>")]
    assert "&lt;b&gt;for good&lt;/b&gt;" in description and "<b>" not in description, "escaped"
    assert 'class="hidden-char"' in description, "revealed"
    assert description.count("x") < 300 and description.endswith("…"), "cut"
    assert "tool-description" not in card_of(unknown.text, approval["id"]), "nothing when unknown"
