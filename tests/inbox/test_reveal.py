"""Every inbox page shows hidden characters of a held call as visibly styled escapes.

Provenance: Airlock-defined (issue 10, class 6: "what reviewers read is what is there"): the
pending page, the detail page, history, the live feed's cards and sentences, and a decision's
answer, read over HTTP as a browser gets them.
"""

from __future__ import annotations

import time

from app.demo.upstream import DemoMarket
from tests import trojan
from tests.harness import AirlockUnderTest
from tests.inbox.conftest import held_call, live_feed, sign_in, web_client

STYLED_OVERRIDE = '<span class="hidden-char" title="hidden character U+202E RIGHT-TO-LEFT OVERRIDE">\\u202e</span>'


async def test_every_page_and_the_live_feed_show_the_tool_names_and_arguments_hidden_characters(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    airlock.set_policy(trojan.POLICY)
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        async with (
            live_feed(client, since=time.time() - 60) as feed,
            held_call(airlock, market, tool=trojan.TOOL, arguments=trojan.ARGUMENTS) as (_call, approval),
        ):
            event = await feed.until(approval["id"], "pending")
            pages = {"pending": await client.get("/inbox"), "detail": await client.get(f"/inbox/{approval['id']}")}
            decided = await client.post(
                f"/inbox/{approval['id']}/reject",
                headers={"Accept": "application/json"},
                data={"csrf_token": csrf, "reason": "no \u202e thanks"},
            )
            rejected = await feed.until(approval["id"], "rejected")
        pages["history"] = await client.get("/inbox/history")
        pages["detail after"] = await client.get(f"/inbox/{approval['id']}")
    for name, page in pages.items():
        assert page.status_code == 200, name
        assert trojan.revealed(page.text), name
        assert f"em_cancel{STYLED_OVERRIDE}_task" in page.text, name
    assert "<title>em_cancel\\u202e_task\\u200b (pending)" in pages["detail"].text, "plain escapes: no markup there"
    assert "no \\u202e thanks" in pages["detail after"].text.replace(STYLED_OVERRIDE, "\\u202e")
    for payload in (event, rejected):
        assert trojan.revealed(payload["html"]) and STYLED_OVERRIDE in payload["html"]
        message = payload["message"]
        assert "em_cancel\\u202e_task\\u200b" in message and not any(raw in message for raw in trojan.RAW)
    assert decided.status_code == 200, decided.text
    assert "em_cancel\\u202e_task\\u200b" in decided.json()["message"]
