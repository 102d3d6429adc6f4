"""Take the README's inbox screenshots: `.venv/bin/python -m tests.inbox.screenshots [OUTPUT_DIR]`.

Starts the demo upstream and an Airlock on a scratch SQLite database, holds a few calls made by the
official `mcp` SDK client, signs in as a reviewer in Debian's Chromium, and saves
`inbox.png` (the pending page, one call decided by another reviewer while it is open, one with
the first of the two approvals its rule needs),
`inbox-phone.png` (the same at 390 px wide), `inbox-detail.png` (an approved call's detail page:
timeline and result) and `inbox-history.png` (the history at 1280 px) into OUTPUT_DIR (default:
`docs/`). Not a test: run it by hand when the pages change.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from playwright.async_api import Page, ViewportSize, async_playwright, expect

from app.demo.upstream import DemoMarket, build_app
from app.store.migrate import upgrade
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task, running_airlock, settings_for_test
from tests.inbox.conftest import CHROMIUM, CHROMIUM_ARGS, held_call
from tests.net import serve

DOCS = Path(__file__).parents[2] / "docs"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# The default policy, with the large-bounty rule needing two reviewers (the pending page shows a quorum's progress).
POLICY: dict[str, Any] = {
    **DEFAULT_POLICY,
    "rules": [{**rule, "approvals": 2} if rule["id"] == "large-bounty" else rule for rule in DEFAULT_POLICY["rules"]],
}
PHONE: ViewportSize = {"width": 390, "height": 844}


async def take(output: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        database = tmp / "airlock.db"
        await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{database}")
        market = DemoMarket(examples=False)
        async with AsyncExitStack() as stack:
            upstream = await stack.enter_async_context(serve(build_app(market)))
            settings = settings_for_test(tmp, f"{upstream}/mcp", f"sqlite+aiosqlite:///{database}", policy=POLICY)
            airlock = await stack.enter_async_context(running_airlock(settings))
            await _screenshots(airlock, market, stack, output)


async def _screenshots(airlock: AirlockUnderTest, market: DemoMarket, stack: AsyncExitStack, output: Path) -> None:
    bakery = new_task(market, title="Photograph the corner bakery", bounty_usd=12)
    survey = new_task(market, title="Count cyclists on Elm Street", bounty_usd=40)
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("research-bot", "em_cancel_task", {"task_id": bakery.id, "reason": "the bakery closed down"}),
        (
            "ops-agent",
            "em_publish_task",
            {
                "title": "Verify 40 storefront opening hours",
                "description": "Visit each shop on the list and photograph its opening hours sign.",
                "bounty_usd": 480,
                "deadline_hours": 48,
            },
        ),
        ("intern-helper", "em_cancel_task", {"task_id": survey.id, "reason": "duplicate of another survey"}),
    ]
    held = [
        await stack.enter_async_context(held_call(airlock, market, agent=agent, tool=tool, arguments=arguments))
        for agent, tool, arguments in calls
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await browser.new_page(base_url=airlock.url, viewport=VIEWPORT)
        await _sign_in(page, airlock)
        first_call, first = held[0]
        _publish_call, publish = held[1]
        await airlock.decide(publish["id"], "approve", reviewer="carol")
        await expect(page.locator(f"#approval-{publish['id']}")).to_contain_text("1 of 2 approvals")
        await airlock.decide(first["id"], "approve", reviewer="bob")
        await expect(page.locator(f"#recent > #approval-{first['id']}")).to_contain_text("Approved by bob")
        await first_call
        await page.evaluate("document.activeElement.blur()")
        await page.screenshot(path=str(output / "inbox.png"), full_page=True)
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=str(output / "inbox-phone.png"))
        await page.set_viewport_size(VIEWPORT)
        await page.goto(f"/inbox/{first['id']}")
        await expect(page.locator(".timeline")).to_contain_text("delivered")
        await page.screenshot(path=str(output / "inbox-detail.png"), full_page=True)
        last_call, last = held[2]
        await airlock.decide(
            last["id"],
            "reject",
            reviewer="bob",
            reason="The survey on Elm Street is a different one: it counts cyclists on weekdays, "
            "this one counts them at weekends, so it is not a duplicate. Keep both.",
        )
        await last_call
        await page.goto("/inbox/history")
        await expect(page.locator(f"#row-{last['id']}")).to_contain_text("rejected")
        await page.screenshot(path=str(output / "inbox-history.png"), full_page=True)
        await browser.close()


async def _sign_in(page: Page, airlock: AirlockUnderTest) -> None:
    await page.goto("/inbox")
    await page.get_by_label("Reviewer name").fill("alice")
    await page.get_by_label("Reviewer token").fill(await airlock.reviewer_token("alice"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("main")).to_have_attribute("data-feed", "open")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(take(target))
    print(f"saved inbox.png, inbox-phone.png, inbox-detail.png and inbox-history.png in {target}")
