"""Every outcome kind, derived once and worded once: the table every channel renders from.

Provenance: Airlock-defined (issue 11 item 3, issue 13 item 2: "outcomes read true everywhere");
pure functions over approval rows, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from app.approvals import wording
from app.approvals.model import Approval
from app.approvals.wording import Kind, Outcome
from app.store.approvals import ApprovalRow
from tests.rows import T0, approval_row

DECIDED: dict[str, Any] = {"decided_by": "bob", "decided_via": "slack", "decided_at": T0 + 60}
VOICE = wording.Voice(time=lambda t: f"T+{int(t - T0)}")


row = approval_row


def result(text: str, *, is_error: bool = False) -> str:
    return json.dumps({"result": {"content": [{"type": "text", "text": text}], "isError": is_error}})


def decoded(stored: ApprovalRow, **changes: Any) -> Approval:
    """`stored` with `changes`, as the `Approval` wording reads."""
    return Approval.from_row(replace(stored, **changes))


ROWS: dict[Kind, ApprovalRow] = {
    Kind.PENDING: row(),
    Kind.APPROVED: row(status="approved", **DECIDED),
    Kind.RUNNING: row(status="executing", **DECIDED),
    Kind.SUCCEEDED: row(status="completed", result=result('{"status": "cancelled"}'), outcome="ok: …", **DECIDED),
    Kind.TOOL_ERROR: row(
        status="completed",
        result=result("Task 'nope' not found\nTraceback…", is_error=True),
        outcome="tool error: Task 'nope' not found",
        **DECIDED,
    ),
    Kind.TOO_LARGE: row(
        status="completed",
        result=result("too big", is_error=True),
        outcome=wording.too_large_outcome(90_000, 50_000),
        **DECIDED,
    ),
    Kind.INPUT_REQUIRED: row(
        status="completed", result=json.dumps({"result": {"resultType": "input_required"}}), **DECIDED
    ),
    Kind.UPSTREAM_ERROR: row(
        status="failed",
        result=json.dumps({"error": {"code": -32603, "message": "boom"}}),
        outcome="upstream error -32603: boom",
        **DECIDED,
    ),
    Kind.NOT_DELIVERED: row(status="failed", outcome="upstream unreachable; the call did not run", **DECIDED),
    Kind.UNKNOWN: row(status="outcome_unknown", outcome="the upstream answered HTTP 502", **DECIDED),
    Kind.REJECTED: row(status="rejected", decision_reason="still needed", **DECIDED),
    Kind.EXPIRED: row(status="expired", finished_at=T0 + 1800),
    Kind.WITHDRAWN: row(
        status="withdrawn",
        decided_by="agent-1",
        decided_via="client",
        decided_at=T0 + 9,
        decision_reason="the client cancelled it",
    ),
}

TABLE: list[tuple[Kind, str | None, str, str, str]] = [
    # kind, detail, label, phrase, account (decision + reason + result)
    (Kind.PENDING, None, "pending", "waiting for a decision", "Waiting for a decision; expires T+1800."),
    (
        Kind.APPROVED,
        None,
        "approved",
        "approved; about to run",
        "Approved by bob via Slack at T+60. It is about to run.",
    ),
    (Kind.RUNNING, None, "running", "running now", "Approved by bob via Slack at T+60. It is running now."),
    (
        Kind.SUCCEEDED,
        '{"status": "cancelled"}',
        "succeeded",
        "ran and succeeded",
        'Approved by bob via Slack at T+60. It ran and succeeded: {"status": "cancelled"}.',
    ),
    (
        Kind.TOOL_ERROR,
        "Task 'nope' not found",
        "tool error",
        "ran; the tool reported an error: Task 'nope' not found",
        "Approved by bob via Slack at T+60. It ran, and the tool reported an error: Task 'nope' not found.",
    ),
    (
        Kind.TOO_LARGE,
        "its result (90000 bytes) exceeds max_response_bytes (50000 bytes) and was not relayed",
        "result too large",
        "ran; its result (90000 bytes) exceeds max_response_bytes (50000 bytes) and was not relayed",
        "Approved by bob via Slack at T+60. It ran, but its result (90000 bytes) exceeds max_response_bytes "
        "(50000 bytes) and was not relayed.",
    ),
    (
        Kind.INPUT_REQUIRED,
        None,
        "needs input",
        "waiting for the agent's input",
        "Approved by bob via Slack at T+60. The upstream asked the agent for input before the tool runs; "
        "the agent's answer continues this approval.",
    ),
    (
        Kind.UPSTREAM_ERROR,
        "-32603: boom",
        "upstream error",
        "the upstream answered with an error: -32603: boom",
        "Approved by bob via Slack at T+60. The upstream answered with an error: -32603: boom. "
        "It may or may not have taken effect.",
    ),
    (
        Kind.NOT_DELIVERED,
        "upstream unreachable",
        "not delivered",
        "did not run: could not be delivered to the upstream (upstream unreachable)",
        "Approved by bob via Slack at T+60. It could not be delivered to the upstream: upstream unreachable. "
        "It did not run.",
    ),
    (
        Kind.UNKNOWN,
        "the upstream answered HTTP 502",
        "outcome unknown",
        "outcome unknown: may or may not have taken effect",
        "Approved by bob via Slack at T+60. Airlock lost track of the upstream while it ran; it may or may not have "
        "taken effect, and Airlock will not re-send it.",
    ),
    (
        Kind.REJECTED,
        None,
        "rejected",
        "rejected; did not run",
        "Rejected by bob via Slack at T+60. Reason: still needed. It did not run.",
    ),
    (
        Kind.EXPIRED,
        None,
        "expired",
        "expired; did not run",
        "Expired at T+1800: nobody decided in time. It did not run.",
    ),
    (
        Kind.WITHDRAWN,
        None,
        "withdrawn",
        "withdrawn; did not run",
        "Withdrawn by the agent at T+9 before anyone decided. Reason: the client cancelled it. It did not run.",
    ),
]


def test_the_table_covers_every_outcome_kind() -> None:
    assert [entry[0] for entry in TABLE] == list(Kind)
    assert set(ROWS) == set(Kind)


@pytest.mark.parametrize(("kind", "detail", "label", "phrase", "account"), TABLE, ids=[k.value for k, *_ in TABLE])
def test_each_outcome_kind_is_derived_once_and_worded_once(
    kind: Kind, detail: str | None, label: str, phrase: str, account: str
) -> None:
    approval = Approval.from_row(ROWS[kind])
    outcome = wording.outcome_of(approval)
    assert outcome == Outcome(kind, detail)
    assert wording.label(kind) == label
    assert wording.phrase(outcome) == phrase
    assert wording.account(approval, VOICE) == account
    assert wording.title(kind)
    assert "It ran." not in account, "never a bare 'It ran.' that hides whether it worked"
    assert ".." not in account and "It did not run. It did not run." not in account


def test_a_tool_error_quotes_the_first_line_of_its_text_revealed_and_cut() -> None:
    text = "\n\n  Task \u202e'x' not found " + "y" * 500 + "\nsecond line"
    outcome = wording.outcome_of(decoded(ROWS[Kind.TOOL_ERROR], result=result(text, is_error=True)))
    assert outcome.kind is Kind.TOOL_ERROR and outcome.detail is not None
    assert outcome.detail.startswith("Task \\u202e'x' not found yyy") and "\u202e" not in outcome.detail
    assert len(outcome.detail) == wording.DETAIL_LIMIT and outcome.detail.endswith("…")
    assert "second line" not in outcome.detail


def test_a_json_result_is_quoted_on_one_line_not_as_its_opening_brace() -> None:
    approval = decoded(ROWS[Kind.SUCCEEDED], result=result('{\n  "status": "cancelled"\n}'))
    assert wording.outcome_of(approval).detail == '{"status": "cancelled"}'


def test_a_tool_error_without_text_still_says_the_tool_reported_an_error() -> None:
    approval = decoded(ROWS[Kind.TOOL_ERROR], result=json.dumps({"result": {"content": [], "isError": True}}))
    assert (
        wording.phrase(wording.outcome_of(approval)) == "ran; the tool reported an error: the tool gave no error text"
    )


@pytest.mark.parametrize("reason", ["still needed", "still needed.", "Why? Because!"])
def test_a_reason_ends_in_exactly_one_full_stop(reason: str) -> None:
    approval = decoded(ROWS[Kind.REJECTED], decision_reason=reason)
    text = wording.account(approval, VOICE)
    assert f"Reason: {reason.rstrip('.')}" in text and ".." not in text
    assert wording.agent_refusal(approval).count("It did not run.") == 1
    assert ".." not in wording.agent_refusal(approval)


def test_an_undelivered_call_tells_the_agent_it_did_not_run_once() -> None:
    """Regression: "… the call did not run. It did not run."."""
    text = wording.agent_refusal(decoded(ROWS[Kind.NOT_DELIVERED]))
    assert text == (
        "This call to em_cancel_task was approved by bob but could not be delivered to the upstream: "
        "upstream unreachable. It did not run."
    )


def test_the_viewer_reads_you() -> None:
    assert wording.account(decoded(ROWS[Kind.APPROVED]), VOICE, "bob").startswith("Approved by you (bob) via Slack")


def test_a_late_decision_names_who_was_first_and_the_expiry() -> None:
    assert (
        wording.too_late(decoded(ROWS[Kind.TOOL_ERROR]), VOICE, "alice")
        == "Too late: bob already approved this call via Slack at T+60."
    )
    assert (
        wording.too_late(decoded(ROWS[Kind.EXPIRED]), VOICE)
        == "Too late: this call expired at T+1800 before anyone decided. It did not run."
    )


def test_a_cut_at_a_word_ends_after_a_whole_word_when_one_ends_near_the_limit() -> None:
    assert wording.cut("hello world this is a test", 20, at_word=True) == "hello world this…"
    assert wording.cut("x" * 50, 20, at_word=True) == "x" * 19 + "…"
    assert wording.cut("short", 20, at_word=True) == "short"


# --- quorum rules (issue 18, item 2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("quorum", "votes", "progress"),
    [
        (1, None, ""),
        (1, '["bob"]', ""),
        (2, None, "0 of 2 approvals so far"),
        (2, '["alice"]', "1 of 2 approvals, by alice"),
        (3, '["alice", "bob"]', "2 of 3 approvals, by alice and bob"),
        (3, '["alice", "bob", "carol"]', "3 of 3 approvals, by alice, bob and carol"),
        (2, '["ali\\u202ece"]', "1 of 2 approvals, by ali\\u202ece"),
    ],
)
def test_a_quorums_progress_names_who_approved_so_far(quorum: int, votes: str | None, progress: str) -> None:
    assert wording.quorum_progress(decoded(row(), quorum=quorum, votes=votes)) == progress


def test_every_channels_account_of_a_quorum_says_how_many_more_approvals_it_waits_for() -> None:
    waiting = decoded(row(), quorum=3, votes='["alice"]')
    assert (
        wording.account(waiting, VOICE) == "Waiting for 2 more approvals (1 of 3 approvals, by alice); expires T+1800."
    )
    approved = decoded(row(status="approved", **DECIDED), quorum=2, votes='["alice", "bob"]')
    assert wording.decision_sentence(approved, VOICE) == (
        "Approved by bob via Slack at T+60 (2 of 2 approvals, by alice and bob)."
    )
    single = decoded(row(status="approved", **DECIDED), votes='["bob"]')
    assert wording.decision_sentence(single, VOICE) == "Approved by bob via Slack at T+60."


def test_an_agent_told_to_call_again_learns_how_many_reviewers_its_call_needs_and_has() -> None:
    waiting = decoded(row(), quorum=2, votes='["alice"]')
    text = wording.agent_not_yet(waiting, "https://airlock.test/inbox")
    assert text.startswith(
        "2 different human reviewers must approve this exact call to em_cancel_task before it runs, "
        "and it has 1 of 2 approvals, by alice (approval apr_1, expires "
    )
    assert "It has NOT run." in text
