"""What Slack shows of an escalation: a line in the approval's message, and the target channel's notice.

Provenance: Airlock-defined (issue 18 item 3: "escalated to #sre-oncall after 10 min" in the
channels). Pure: Block Kit built from in-memory approvals.
"""

from __future__ import annotations

import json

from app.slack.blocks import approval_message, escalation_message
from tests.rows import T0, approval

PUBLIC_URL = "https://airlock.example"


def test_an_escalated_message_says_where_and_after_how_long_with_new_block_ids() -> None:
    waiting = approval(escalate_at=T0 + 600, escalate_to="sre")
    escalated = approval(escalate_at=T0 + 600, escalate_to="sre", escalated_at=T0 + 600)
    before = approval_message(waiting, PUBLIC_URL, escalated_to="#sre-oncall")
    after = approval_message(escalated, PUBLIC_URL, escalated_to="#sre-oncall")
    assert "Escalated" not in json.dumps(before.blocks)
    assert "Escalated to #sre-oncall after 10 min." in json.dumps(after.blocks)
    assert not {b["block_id"] for b in before.blocks} & {b["block_id"] for b in after.blocks}


def test_the_notice_names_the_call_links_the_approval_and_escapes_the_agents_text() -> None:
    escalated = approval(tool="<!channel>", escalate_to="sre", escalated_at=T0 + 600)
    notice = escalation_message(escalated, PUBLIC_URL)
    text = json.dumps(notice.blocks)
    assert "nobody has decided in 10 min" in text
    assert f"{PUBLIC_URL}/inbox/apr_1" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<!channel>" not in notice.text
