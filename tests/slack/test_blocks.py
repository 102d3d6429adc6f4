"""The approval message: escaping of untrusted text, Block Kit limits, fallback text, and each outcome.

Provenance: Slack's Block Kit limits and mrkdwn escaping rules (reference notes, §3) and
Airlock-defined layout (issue: Slack approvals, "the message"). Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from app.approvals.model import Approval
from app.approvals.wording import iso
from app.slack.blocks import (
    APPROVE_ACTION,
    REASON_BLOCK,
    REJECT_ACTION,
    REJECT_CALLBACK,
    approval_message,
    escape,
    escaped_within,
    reject_modal,
)
from app.store.approvals import ALL_STATUSES
from tests import rows

PUBLIC_URL = "https://airlock.example"
NOW = rows.T0


def approval(**changes: Any) -> Approval:
    """A pending approval (`tests/rows.py`) with this file's call, and `changes`, applied."""
    defaults: dict[str, Any] = {
        "id": "apr_abc123",
        "upstream": "execution-market",
        "arguments": json.dumps({"task_id": "t-1", "reason": "duplicate"}),
        "args_hash": "0" * 64,
        "policy_reason": "cancelling is irreversible",
    }
    return rows.approval(**(defaults | changes))


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn string in the blocks (the only text Slack parses for mentions and links)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def test_escape_turns_slacks_three_control_characters_into_entities() -> None:
    assert escape("<!channel> & <http://evil|x>") == "&lt;!channel&gt; &amp; &lt;http://evil|x&gt;"


def test_mentions_and_links_inside_arguments_are_shown_not_acted_on() -> None:
    hostile = {"note": "<!channel> <!here> <@U123> <http://evil.example|click me> a & b", "who": "<!subteam^S1>"}
    message = approval_message(approval(arguments=json.dumps(hostile), agent="<!everyone>", tool="t<x>"), PUBLIC_URL)
    texts = [*mrkdwn_texts(message.blocks), message.text]
    for raw in ("<!channel>", "<!here>", "<@U123>", "<http://evil", "<!subteam^S1>", "<!everyone>", "t<x>"):
        assert not any(raw in text for text in texts), raw
    arguments = next(text for text in texts if text.startswith("*Arguments:*"))
    assert "&lt;!channel&gt;" in arguments and "a &amp; b" in arguments


def test_three_backticks_in_arguments_cannot_close_the_code_block() -> None:
    message = approval_message(approval(arguments=json.dumps({"x": "```*bold* <!channel>```"})), PUBLIC_URL)
    arguments = next(text for text in mrkdwn_texts(message.blocks) if text.startswith("*Arguments:*"))
    assert arguments.count("```") == 2


def test_huge_arguments_are_truncated_within_block_kit_limits_with_a_link_to_the_inbox() -> None:
    arguments = json.dumps({"body": "<" * 20_000, "more": "x" * 50_000})
    long_reason = "r" * 5000
    message = approval_message(
        approval(arguments=arguments, tool="t" * 256, policy_reason=long_reason, agent="a" * 64), PUBLIC_URL
    )
    blocks = message.blocks
    assert len(blocks) <= 50
    assert len(json.dumps(blocks)) < 12_000, "well under the ~13k at which Slack refuses a message"
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
    texts = mrkdwn_texts(blocks)
    assert any("truncated" in text and f"{PUBLIC_URL}/inbox/apr_abc123" in text for text in texts)
    shown = next(text for text in texts if text.startswith("*Arguments:*"))
    assert not shown.rstrip("`").endswith(("&", "&l", "&lt")), "truncation never splits an entity"


def test_escaped_within_keeps_whole_entities_and_reports_truncation() -> None:
    assert escaped_within("a<b", 4) == ("a", True)
    assert escaped_within("a<b", 5) == ("a&lt;", True)
    assert escaped_within("a<b", 6) == ("a&lt;b", False)


def test_a_pending_message_has_approve_with_a_confirm_dialog_and_reject_each_carrying_only_the_id() -> None:
    message = approval_message(approval(), PUBLIC_URL)
    [actions] = [block for block in message.blocks if block["type"] == "actions"]
    approve, reject = actions["elements"]
    assert (approve["action_id"], approve["style"], approve["value"]) == (APPROVE_ACTION, "primary", "apr_abc123")
    assert (reject["action_id"], reject["style"], reject["value"]) == (REJECT_ACTION, "danger", "apr_abc123")
    assert approve["confirm"]["confirm"]["text"] == "Approve" and len(approve["confirm"]["text"]["text"]) <= 300
    assert "confirm" not in reject
    rendered = json.dumps(message.blocks)
    assert "Approval needed: em_cancel_task" in rendered
    for shown in ("agent-1", "execution-market", "apr_abc123", "cancelling is irreversible", "duplicate"):
        assert shown in rendered


def test_the_expiry_is_a_slack_date_with_an_iso_fallback() -> None:
    message = approval_message(approval(expires_at=1_795_001_800.0), PUBLIC_URL)
    expected = f"<!date^1795001800^{{date_short_pretty}} at {{time}}|{iso(1_795_001_800.0)}>"
    assert expected in json.dumps(message.blocks)


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_status_has_fallback_text_and_only_pending_has_buttons(status: str) -> None:
    row = approval(
        status=status,
        decided_by=None if status in ("pending", "expired") else "alice",
        decided_via="slack",
        decided_at=NOW + 5,
        decision_reason="because",
    )
    message = approval_message(row, PUBLIC_URL)
    assert message.text and "em_cancel_task" in message.text
    assert any(block["type"] == "actions" for block in message.blocks) == (status == "pending")
    assert len({block["block_id"] for block in message.blocks}) == len(message.blocks)
    assert all(block["block_id"].endswith(status) for block in message.blocks), "new block ids per update"


def test_a_rejection_names_who_when_and_why() -> None:
    row = approval(
        status="rejected",
        decided_by="bob",
        decided_via="slack",
        decided_at=NOW + 60,
        decision_reason="<!channel> not today",
    )
    outcome = json.dumps(approval_message(row, PUBLIC_URL).blocks)
    assert "Rejected* by bob via Slack at <!date^1795000060^" in outcome
    assert "&lt;!channel&gt; not today" in outcome


def test_a_completed_call_shows_a_short_escaped_summary_of_its_result() -> None:
    result = {"result": {"content": [{"type": "text", "text": "cancelled <!here>\n" + "z" * 1000}], "isError": False}}
    row = approval(
        status="completed", decided_by="alice", decided_via="api", decided_at=NOW + 1, result=json.dumps(result)
    )
    blocks = approval_message(row, PUBLIC_URL).blocks
    outcome = next(block for block in blocks if block["block_id"].startswith("outcome"))
    text = outcome["text"]["text"]
    assert "Approved* by alice via the API" in text and "It ran and succeeded: cancelled &lt;!here&gt;." in text
    assert len(text) < 600


def test_a_round_that_asked_for_input_says_so_rather_than_an_empty_result() -> None:
    result = {"result": {"resultType": "input_required", "inputRequests": {"rating": {}}, "requestState": "s"}}
    row = approval(
        status="completed", decided_by="alice", decided_via="api", decided_at=NOW + 1, result=json.dumps(result)
    )
    rendered = json.dumps(approval_message(row, PUBLIC_URL).blocks)
    assert "asked the agent for input before the tool runs" in rendered and "an empty result" not in rendered


def test_an_expired_message_says_nobody_decided() -> None:
    message = approval_message(approval(status="expired"), PUBLIC_URL)
    assert "Expired* at <!date^" in json.dumps(message.blocks)
    assert message.text.startswith("Expired: em_cancel_task")


def test_rule_routing_mentions_its_users_and_groups_and_ignores_malformed_ids() -> None:
    slack = {"channel": "C1", "users": ["U0ALICE", "<!channel>", 7], "usergroups": ["S0ONCALL", "x"]}
    rendered = json.dumps(approval_message(approval(routing=json.dumps({"slack": slack})), PUBLIC_URL).blocks)
    assert "Reviewers: <@U0ALICE> <!subteam^S0ONCALL>" in rendered
    assert "<!channel>" not in rendered


def test_another_channels_routing_mentions_nobody_in_slack() -> None:
    routing = json.dumps({"other": {"users": ["U0ALICE"]}})
    assert "Reviewers:" not in json.dumps(approval_message(approval(routing=routing), PUBLIC_URL).blocks)


def test_the_reject_modal_asks_for_a_reason_and_carries_the_approval_in_its_metadata() -> None:
    modal = reject_modal(approval(tool="<!channel>"), '{"approval": "apr_abc123"}')
    assert modal["callback_id"] == REJECT_CALLBACK
    assert modal["private_metadata"] == '{"approval": "apr_abc123"}'
    [reason] = [block for block in modal["blocks"] if block["type"] == "input"]
    assert reason["block_id"] == REASON_BLOCK and reason["element"]["min_length"] == 1
    assert "<!channel>" not in json.dumps(modal)
    assert all(len(modal[key]["text"]) <= 24 for key in ("title", "submit", "close"))


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_message_and_the_modal_pass_slack_sdks_own_block_kit_validators(status: str) -> None:
    row = approval(
        status=status,
        decided_by="alice",
        decided_via="slack",
        decided_at=NOW + 1,
        decision_reason="x" * 3000,
        tool="t" * 256,
        policy_reason="r" * 5000,
        arguments=json.dumps({"body": "<>&" * 5000}),
        routing=json.dumps({"slack": {"users": ["U0ALICE"], "usergroups": ["S0ONCALL"]}}),
    )
    for block in Block.parse_all(approval_message(row, PUBLIC_URL).blocks):
        block.validate_json()
    View(**reject_modal(row, '{"approval": "apr_abc123"}')).validate_json()


def test_a_tool_error_reads_as_an_error_not_as_success() -> None:
    """Regression (issues 11 and 13): an approved call whose tool answered `isError: true` read "ran"."""
    result = {"result": {"content": [{"type": "text", "text": "Task 'nope' not found <!here>"}], "isError": True}}
    row = approval(
        status="completed", decided_by="alice", decided_via="slack", decided_at=NOW + 1, result=json.dumps(result)
    )
    message = approval_message(row, PUBLIC_URL)
    outcome = next(block for block in message.blocks if block["block_id"].startswith("outcome"))["text"]["text"]
    assert outcome.startswith(":warning: *Approved* by alice via Slack at <!date^")
    assert "It ran, and the tool reported an error: Task 'nope' not found &lt;!here&gt;." in outcome
    assert "succeeded" not in outcome
    assert message.blocks[0]["text"]["text"] == "Approved, tool error: em_cancel_task"
    assert message.text.startswith("Approved, tool error: em_cancel_task for")
