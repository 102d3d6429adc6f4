"""Slack shows hidden characters of a held call as escapes: message, fallback text, reject modal.

Provenance: Airlock-defined (issue 10, class 6: "what reviewers read is what is there"); the
message is read from the fake Slack Web API, as Slack would have received it.
"""

from __future__ import annotations

import asyncio
import json

from app.demo.fake_slack import FakeSlack
from app.demo.upstream import DemoMarket
from tests import trojan
from tests.harness import AirlockUnderTest
from tests.net import wait_for
from tests.slack.conftest import BOB, click_payload, interact, posted


async def test_a_tool_name_and_arguments_with_bidi_and_zero_width_characters_are_shown_as_escapes(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    slack_airlock.set_policy(trojan.POLICY)
    async with slack_airlock.client() as client:
        call = asyncio.create_task(client.call_tool(trojan.TOOL, trojan.ARGUMENTS))
        try:
            approval = await slack_airlock.wait_pending()
            row = await posted(slack_airlock, approval["id"])
            message = slack.message(row.channel, row.ts)
            await interact(slack_airlock, click_payload(row, "reject", user=BOB, trigger_id="7.7.trigger"))
            await wait_for(lambda: bool(slack.calls_to("views.open")))
        finally:
            call.cancel()
    blocks = json.dumps(message["blocks"], ensure_ascii=False)
    assert trojan.revealed(blocks)
    header = message["blocks"][0]["text"]["text"]
    assert header == "Approval needed: em_cancel\\u202e_task\\u200b"
    assert trojan.revealed(message["text"])
    view = slack.calls_to("views.open")[0].body["view"]
    intro = (json.loads(view) if isinstance(view, str) else view)["blocks"][0]["text"]["text"]
    assert "*em_cancel\\u202e_task\\u200b*" in intro and not any(raw in intro for raw in trojan.RAW)
    assert market.calls.get(trojan.TOOL, 0) == 0
