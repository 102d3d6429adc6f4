"""The inbox in a real browser: sign in, watch held calls arrive and leave live, decide with a click or the keyboard.

Provenance: Airlock-defined (issue: web approval inbox, "Tests"). Chromium (Debian's, driven by
Playwright) against Airlock under uvicorn in front of the demo upstream; the calls are made by the
official `mcp` SDK client, which must receive the upstream's result or the reviewer's reason.
Every wait is Playwright's auto-waiting `expect` or a bounded `asyncio.timeout`, never a sleep.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from app.demo.upstream import DemoMarket
from tests.harness import DEFAULT_POLICY, AirlockUnderTest
from tests.inbox.conftest import held_call

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)

PHONE: ViewportSize = {"width": 375, "height": 740}


@pytest.fixture
async def page(browser: Browser, airlock: AirlockUnderTest) -> AsyncIterator[Page]:
    """A fresh browser tab on this Airlock, which must never load anything from anywhere else."""
    context = await browser.new_context(base_url=airlock.url)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        await context.close()
    assert [url for url in requested if not url.startswith((airlock.url, "data:"))] == []
    assert errors == [], "the script threw"


async def sign_in(page: Page, airlock: AirlockUnderTest, name: str = "alice") -> None:
    token = await airlock.reviewer_token(name)
    await page.goto("/inbox")
    await expect(page).to_have_url(re.compile(r"/inbox/-/login\?next="))
    await page.get_by_label("Reviewer name").fill(name)
    await page.get_by_label("Reviewer token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name=re.compile("Waiting for a decision"))).to_be_visible()
    await expect(page.locator("main")).to_have_attribute("data-feed", "open")


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


async def test_a_held_call_appears_without_reload_and_approving_it_returns_the_upstream_result(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    await sign_in(page, airlock)
    await expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()
    await page.evaluate("window.stillTheSamePage = true")
    async with held_call(airlock, market) as (call, approval):
        card = page.locator(f"#pending > #approval-{approval['id']}")
        await expect(card).to_be_visible()
        await expect(card).to_contain_text("em_cancel_task")
        await expect(card).to_contain_text("agent-1")
        await expect(card).to_contain_text("cancelling is irreversible")
        await expect(card.locator("pre.arguments")).to_contain_text(f'"task_id": "{approval["arguments"]["task_id"]}"')
        await expect(page).to_have_title(re.compile(r"^\(1\) Pending"))
        await card.get_by_role("button", name="Approve").click()
        async with asyncio.timeout(10):
            result = await call
        decided = page.locator(f"#recent > #approval-{approval['id']}")
        await expect(decided).to_contain_text("Approved by you (alice) via the inbox")
        await expect(decided.get_by_role("button")).to_have_count(0)
        await expect(page.locator("#pending > li")).to_have_count(0)
    assert not result.is_error, text_of(result)
    assert result.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1
    assert await page.evaluate("window.stillTheSamePage") is True, "no reload happened"


async def test_rejecting_with_a_reason_sends_the_reason_to_the_agent(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    await sign_in(page, airlock)
    async with held_call(airlock, market) as (call, approval):
        card = page.locator(f"#approval-{approval['id']}")
        await card.get_by_label("Reason for rejecting").fill("the task is still needed")
        await card.get_by_role("button", name="Reject").click()
        async with asyncio.timeout(10):
            result = await call
        await expect(page.locator(f"#recent > #approval-{approval['id']}")).to_contain_text(
            "Rejected by you (alice) via the inbox"
        )
    assert result.is_error
    assert "alice" in text_of(result) and "the task is still needed" in text_of(result)
    assert market.calls["em_cancel_task"] == 0


async def test_a_decision_made_through_the_api_leaves_the_page_live_and_the_buttons_go_away(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    await sign_in(page, airlock)
    async with held_call(airlock, market) as (call, approval):
        detail = await page.context.new_page()
        await detail.goto(f"/inbox/{approval['id']}")
        await expect(detail.locator("main")).to_have_attribute("data-feed", "open")
        await expect(detail.get_by_role("button", name="Approve")).to_be_visible()
        await expect(page.locator(f"#pending > #approval-{approval['id']}")).to_be_visible()
        assert (await airlock.decide(approval["id"], "approve", reviewer="bob")).status_code == 200
        await expect(page.locator(f"#pending > #approval-{approval['id']}")).to_have_count(0)
        moved = page.locator(f"#recent > #approval-{approval['id']}")
        await expect(moved).to_contain_text("Approved by bob via the API")
        await expect(moved.get_by_role("button")).to_have_count(0)
        await expect(detail.get_by_role("button", name="Approve")).to_have_count(0)
        await expect(detail.locator("#approval .outcome")).to_contain_text("Approved by bob via the API")
        async with asyncio.timeout(10):
            await call
        await expect(detail.locator(".timeline")).to_contain_text("delivered")
    await expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()


async def test_a_post_without_the_csrf_token_is_refused_in_the_browser(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    await sign_in(page, airlock)
    async with held_call(airlock, market) as (_call, approval):
        await expect(page.locator(f"#approval-{approval['id']}")).to_be_visible()
        status, error = await page.evaluate(
            """async (url) => {
            const response = await fetch(url, {method: "POST", headers: {Accept: "application/json"}});
            return [response.status, (await response.json()).error];
        }""",
            f"/inbox/{approval['id']}/approve",
        )
        assert [a["id"] for a in await airlock.approvals("pending")] == [approval["id"]]
        await expect(page.locator(f"#pending > #approval-{approval['id']}")).to_be_visible()
    assert status == 403 and "CSRF" in error


async def test_a_reviewer_can_decide_with_the_keyboard_alone_on_a_phone_width_screen(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    await page.set_viewport_size(PHONE)
    await sign_in(page, airlock)
    async with held_call(airlock, market) as (call, approval):
        card = page.locator(f"#approval-{approval['id']}")
        await expect(card).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.textContent.trim()") == "Approve":
                break
        else:
            pytest.fail("Tab never reached the Approve button")
        outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", "focus is visible"
        await page.keyboard.press("Enter")
        async with asyncio.timeout(10):
            result = await call
        await expect(page.locator(f"#recent > #approval-{approval['id']}")).to_be_focused()
    assert not result.is_error


DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE_390: ViewportSize = {"width": 390, "height": 844}


async def test_the_history_fits_a_1280_px_screen_and_keeps_each_status_in_view_on_a_phone(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    reason = "this cancellation would strand a worker who already accepted the task " * 4
    async with held_call(airlock, market) as (call, approval):
        assert (await airlock.decide(approval["id"], "reject", reviewer="bob", reason=reason)).status_code == 200
        async with asyncio.timeout(10):
            await call
    await page.set_viewport_size(DESKTOP)
    await sign_in(page, airlock)
    await page.goto("/inbox/history")
    row = page.locator(f"#row-{approval['id']}")
    await expect(row).to_contain_text("rejected")
    await expect(page.locator("table.audit tbody tr").first).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), (
        "no sideways scrolling at 1280 px"
    )
    for wrap in await page.locator(".table-wrap").all():
        assert await wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), "each table fits without its own scroll"
    assert reason.strip() in (await row.locator("td[data-label=Reason]").get_attribute("title") or ""), (
        "the whole reason is in the clamped cell's title"
    )

    await page.set_viewport_size(PHONE_390)
    assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), (
        "no sideways scrolling on a phone"
    )
    statuses = page.locator("table.approvals tbody tr td.status")
    assert await statuses.count() >= 1
    for status in await statuses.all():
        await status.scroll_into_view_if_needed()
        await expect(status).to_be_visible()
        box = await status.bounding_box()
        assert box is not None, "the status is laid out"
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_390["width"], box
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE_390["height"], box


async def test_a_quorum_vote_keeps_the_card_pending_with_its_progress_until_the_last_approval(
    page: Page, airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """Issue 18, item 2: each vote, made elsewhere or on the page, shows on the card without a reload,
    and a half-typed reason survives the update."""
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "approvals": 3}]}
    airlock.set_policy(policy)
    await sign_in(page, airlock)
    async with held_call(airlock, market) as (call, approval):
        card = page.locator(f"#pending > #approval-{approval['id']}")
        await expect(card.locator(".quorum")).to_have_text("0 of 3 approvals so far")
        reason = card.get_by_label(re.compile("reason for rejecting"))
        await reason.fill("half typed")
        assert (await airlock.decide(approval["id"], "approve", reviewer="carol")).status_code == 200
        await expect(card.locator(".quorum")).to_have_text("1 of 3 approvals, by carol")
        await expect(reason).to_have_value("half typed")
        await card.get_by_role("button", name="Approve").click()
        await expect(page.locator("#notice")).to_contain_text(
            "2 of 3 approvals, by carol and alice; it runs when 1 more reviewer approves."
        )
        await expect(card.locator(".quorum")).to_have_text("2 of 3 approvals, by carol and alice")
        await expect(card.get_by_role("button", name="Approve")).to_be_visible()
        assert market.calls.get("em_cancel_task", 0) == 0
        assert (await airlock.decide(approval["id"], "approve", reviewer="bob")).status_code == 200
        moved = page.locator(f"#recent > #approval-{approval['id']}")
        await expect(moved).to_contain_text("3 of 3 approvals, by carol, alice and bob")
        await expect(moved.get_by_role("button")).to_have_count(0)
        async with asyncio.timeout(10):
            await call
    assert market.calls["em_cancel_task"] == 1
