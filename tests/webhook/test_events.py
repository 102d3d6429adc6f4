"""Webhook events: every status on an approval's path, worded as of that status.

Provenance: Airlock-defined (docs/webhook.md, "Events"), pure functions over `Approval`.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.approvals.model import Approval, Status
from app.webhook import events
from tests.rows import approval_row


@pytest.mark.parametrize("status", list(Status))
def test_every_path_starts_parked_ends_at_the_status_and_follows_the_lifecycle(status: Status) -> None:
    path = events.path(status)
    assert path[0] is Status.PENDING and path[-1] is status
    assert len(set(path)) == len(path)
    assert [s for s in path if s.is_finished] == ([status] if status.is_finished else [])


def test_a_parked_event_is_named_parked_and_others_by_their_status() -> None:
    assert events.event_name(Status.PENDING) == "parked"
    assert events.event_name(Status.OUTCOME_UNKNOWN) == "outcome_unknown"


def test_an_earlier_status_is_worded_without_what_came_after() -> None:
    row = approval_row(status="completed", decided_by="alice", decided_via="api", decided_at=1.0, outcome="ran")
    done = Approval.from_row(row)
    parked = json.loads(events.body(events.as_of(done, Status.PENDING), event_id="evt_1", seq=1, public_url="u", now=2))
    approved = json.loads(
        events.body(events.as_of(done, Status.APPROVED), event_id="evt_2", seq=2, public_url="u", now=2)
    )
    assert parked["type"] == "approval.parked" and parked["approval"]["decided_by"] is None
    assert approved["approval"]["decided_by"] == "alice" and approved["approval"]["outcome"]["kind"] == "approved"
    assert events.as_of(done, Status.COMPLETED) is done


def test_a_continuation_is_announced_from_approved_on_as_nobody_was_asked() -> None:
    continued = Approval.from_row(approval_row(status="executing", continues="apr_0", decided_by="alice"))
    assert events.steps(continued) == [(2, Status.APPROVED), (3, Status.EXECUTING)]
    assert events.steps(Approval.from_row(approval_row()))[0] == (1, Status.PENDING)


def test_a_quorum_approvals_events_carry_its_progress_and_the_parked_event_none_of_the_votes() -> None:
    """Issue 18, item 2: the webhook says "2 of 2 approvals, by alice and bob" as every channel does."""
    row = approval_row(status="approved", decided_by="bob", decided_via="api", decided_at=1.0)
    done = Approval.from_row(replace(row, quorum=2, votes='["alice", "bob"]'))
    parked = json.loads(events.body(events.as_of(done, Status.PENDING), event_id="e1", seq=1, public_url="u", now=2))
    approved = json.loads(events.body(done, event_id="e2", seq=2, public_url="u", now=2))
    assert parked["approval"]["quorum"] == {"needed": 2, "approvals": [], "progress": "0 of 2 approvals so far"}
    assert approved["approval"]["quorum"] == {
        "needed": 2,
        "approvals": ["alice", "bob"],
        "progress": "2 of 2 approvals, by alice and bob",
    }
    assert "(2 of 2 approvals, by alice and bob)" in approved["approval"]["outcome"]["summary"]
