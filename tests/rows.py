"""Approval rows (and the `Approval`s decoded from them) built in memory, for the unit tests of what
channels show (no database)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from app.approvals.model import Approval
from app.store.approvals import ApprovalRow

T0: Final = 1_795_000_000.0
"""When the row was created (a fixed instant, so times in sentences are predictable)."""


def approval_row(**changes: Any) -> ApprovalRow:
    """A pending `em_cancel_task` approval created at `T0`, with `changes` applied."""
    base = ApprovalRow(
        id="apr_1",
        upstream="market",
        tool="em_cancel_task",
        agent="agent-1",
        arguments='{"task_id":"t1"}',
        args_hash="h",
        params="{}",
        forward_headers="{}",
        era="modern",
        protocol_version="2026-07-28",
        session_id=None,
        request_id="1",
        progress_token=None,
        policy_rule="cancel",
        policy_reason="irreversible",
        policy_version="v1",
        reviewers=None,
        routing=None,
        status="pending",
        created_at=T0,
        expires_at=T0 + 1800,
        updated_at=T0,
        attach_seq=0,
        decided_by=None,
        decided_via=None,
        decided_at=None,
        decision_reason=None,
        executor=None,
        lease_until=None,
        executed_at=None,
        finished_at=None,
        result=None,
        outcome=None,
        delivered_at=None,
    )
    return replace(base, **changes)


def approval(**changes: Any) -> Approval:
    """`approval_row(**changes)` as the `Approval` channels read."""
    return Approval.from_row(approval_row(**changes))
