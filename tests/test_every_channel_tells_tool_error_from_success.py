"""Regression, issue 11 item 3: every channel tells "ran, and the tool reported an error" from "ran and
succeeded", for the same `completed` status.

Provenance: Airlock-defined ("one module owns every sentence a user reads about an outcome"). Pure:
each channel's renderer over one approval in memory, no database (the end-to-end tool-error case
through every channel is `tests/slack/test_issue13_tool_error_outcome.py`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.approvals.api import approval_json
from app.approvals.model import Approval
from app.cli import _approval_text, _outcome
from app.inbox import present
from app.slack.blocks import approval_message
from tests.rows import T0, approval

DECIDED: dict[str, Any] = {"decided_by": "bob", "decided_via": "inbox", "decided_at": T0 + 60, "executed_at": T0 + 61}


def completed(text: str, *, is_error: bool) -> Approval:
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}], "isError": is_error}}
    return approval(status="completed", result=json.dumps(answer), finished_at=T0 + 62, **DECIDED)


FAILED = completed("Task 'nope' not found", is_error=True)
WORKED = completed("cancelled t1", is_error=False)
CASES = [
    pytest.param(FAILED, "tool error", "ran; the tool reported an error: Task 'nope' not found", id="tool-error"),
    pytest.param(WORKED, "succeeded", "ran and succeeded", id="success"),
]


@pytest.mark.parametrize(("shown", "label", "phrase"), CASES)
def test_the_inbox_card_detail_and_history_say_which(shown: Approval, label: str, phrase: str) -> None:
    assert present.label(shown) == label
    assert present.summary(shown) == phrase
    assert present.kind(shown) == ("tool_error" if shown.tool_reported_error else "succeeded")
    said = present.outcome(shown) + " " + present.result_line(shown)
    assert ("the tool reported an error" in said) is shown.tool_reported_error
    assert ("It ran and succeeded" in said) is not shown.tool_reported_error


@pytest.mark.parametrize(("shown", "label", "phrase"), CASES)
def test_the_slack_message_after_completion_says_which(shown: Approval, label: str, phrase: str) -> None:
    message = approval_message(shown, "https://airlock.example")
    title = "Approved, tool error" if shown.tool_reported_error else "Approved, ran"
    assert message.blocks[0]["text"]["text"] == f"{title}: em_cancel_task"
    assert message.text.startswith(f"{title}: em_cancel_task")
    blocks = json.dumps(message.blocks)
    assert ("the tool reported an error" in blocks) is shown.tool_reported_error
    assert ("It ran and succeeded" in blocks) is not shown.tool_reported_error


@pytest.mark.parametrize(("shown", "label", "phrase"), CASES)
def test_the_api_json_says_which(shown: Approval, label: str, phrase: str) -> None:
    body = approval_json(shown, "https://airlock.example")
    assert body["status"] == "completed"
    assert body["outcome_kind"] == ("tool_error" if shown.tool_reported_error else "succeeded")
    assert body["outcome_summary"] == phrase
    assert body["result"]["result"]["isError"] is shown.tool_reported_error


@pytest.mark.parametrize(("shown", "label", "phrase"), CASES)
def test_the_cli_list_and_show_say_which(shown: Approval, label: str, phrase: str) -> None:
    assert _outcome(shown) == phrase
    text = _approval_text(shown, [], "https://airlock.example")
    assert f"  status    completed ({phrase})" in text
    assert ("the tool reported an error" in text) is shown.tool_reported_error
    assert ("It ran and succeeded" in text) is not shown.tool_reported_error
