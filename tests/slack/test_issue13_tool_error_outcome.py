"""Regression, issue 11 item 3 and issue 13 item 2: an approved call whose tool answered `isError: true`
read "It ran." (as if it had worked) in the inbox, the history and `airlock approvals list`.

Provenance: Airlock-defined ("outcomes read true everywhere"). One approved call of the demo
upstream's `em_cancel_task` on a task that does not exist ("Task 'nope' not found"), read back
through every channel: the agent's result, the inbox (live card, detail page, history), Slack
(the message update, through the fake Slack Web API), the JSON API and the CLI.
"""

from __future__ import annotations

import asyncio
import json
import time
from html import unescape
from pathlib import Path

from app.approvals.outcomes import APPROVAL_META_KEY
from app.demo.fake_slack import FakeSlack
from app.demo.upstream import DemoMarket
from tests.inbox.conftest import live_feed, sign_in, web_client
from tests.slack.conftest import StartSlackAirlock, pending_approval, posted, shows, text_of
from tests.test_cli import acli, write_config

ERROR = "Error executing tool em_cancel_task: Task 'nope' not found"
"""The first line of the tool's error text, as the MCP SDK words a `ToolError`."""
SENTENCE = f"It ran, and the tool reported an error: {ERROR}."
PHRASE = f"ran; the tool reported an error: {ERROR}"


async def test_a_tool_error_reads_as_a_tool_error_in_every_channel(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket, tmp_path: Path
) -> None:
    airlock = await start_slack_airlock()
    async with web_client(airlock) as web:
        await sign_in(web, airlock)
        async with airlock.client() as client, live_feed(web, since=time.time()) as feed:
            call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": "nope", "reason": "x"}))
            approval = await pending_approval(airlock)
            assert (await airlock.decide(approval["id"], "approve", reviewer="bob")).status_code == 200
            async with asyncio.timeout(10):
                result = await call
            card = await feed.until(approval["id"], "completed")
        detail = unescape((await web.get(f"/inbox/{approval['id']}")).text)
        history = unescape((await web.get("/inbox/history", params={"status": "completed"})).text)

    # The agent: the tool's own error, untouched, and the outcome kind in Airlock's metadata.
    assert result.is_error and "Task 'nope' not found" in text_of(result)
    assert result.meta is not None and result.meta[APPROVAL_META_KEY]["outcome"] == "tool_error"
    assert market.calls["em_cancel_task"] == 1

    # The inbox: the live card (sent when the execution finished), the detail page and the history.
    html = unescape(card["html"])
    assert SENTENCE in html and "tool error</p>" in html and 'data-outcome="tool_error"' in html
    assert SENTENCE in card["message"]
    assert "Approved by bob via the API" in detail and SENTENCE in detail and ">tool error</span>" in detail
    assert PHRASE in history and ">tool error</span>" in history
    for page in (html, detail, history):
        assert "It ran." not in page and "succeeded" not in page

    # Slack: the message is updated to say so, without buttons.
    row = await posted(airlock, approval["id"])
    message = await shows(slack, row, "the tool reported an error")
    blocks = json.dumps(message["blocks"])
    assert SENTENCE in blocks and "Approved, tool error: em_cancel_task" in blocks and "succeeded" not in blocks
    assert message["text"].startswith("Approved, tool error: em_cancel_task")

    # The API.
    shown = await airlock.approval(approval["id"])
    assert (shown["status"], shown["outcome_kind"], shown["outcome_summary"]) == ("completed", "tool_error", PHRASE)

    # The CLI.
    config = str(write_config(tmp_path, airlock.settings.database_url))
    listing = await acli("approvals", "list", "--status", "completed", "--config", config)
    assert listing.exit_code == 0, listing.output
    [header, line] = listing.stdout.splitlines()
    assert header.split()[-1] == "OUTCOME" and line.split()[:2] == [approval["id"], "completed"]
    assert line.endswith(PHRASE)
    show = json.loads((await acli("approvals", "show", approval["id"], "--json", "--config", config)).stdout)
    assert (show["outcome_kind"], show["outcome_summary"]) == ("tool_error", PHRASE)
