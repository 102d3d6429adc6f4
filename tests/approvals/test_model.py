"""`Approval.from_row`: an approval row decoded once into the typed model every channel reads.

Provenance: Airlock-defined (issue 11 item 2: "parse once at the edge into typed models"); pure, no
database.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from app.approvals.model import FINISHED, OPEN, Approval, Status, StoredResult
from app.protocol import Era
from app.store.approvals import ALL_STATUSES
from app.store.approvals import FINISHED as STORE_FINISHED
from tests.rows import T0, approval_row


def test_a_row_decodes_into_typed_fields() -> None:
    row = approval_row(
        arguments='{"task_id":"t1","n":2}',
        forward_headers='{"x-tenant":"acme"}',
        era="handshake",
        reviewers='["alice","bob"]',
        routing='{"slack":{"channel":"#ops","users":["U1"]}}',
        status="completed",
        result=json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "ok"}]}}),
    )
    approval = Approval.from_row(row)
    assert approval.arguments == {"task_id": "t1", "n": 2}
    assert approval.arguments_text == row.arguments
    assert approval.forward_headers == {"x-tenant": "acme"}
    assert approval.era is Era.HANDSHAKE
    assert approval.status is Status.COMPLETED
    assert approval.reviewers == ("alice", "bob")
    assert approval.routing_for("slack") == {"channel": "#ops", "users": ["U1"]}
    assert approval.routing_for("teams") == {}
    assert approval.result is not None and approval.result.texts == ["ok"]
    assert approval.created_at == T0 and approval.expires_at == T0 + 1800


def test_every_stored_status_is_a_status_and_the_open_and_finished_sets_match_the_store() -> None:
    assert [Status(s) for s in ALL_STATUSES] == list(Status)
    assert {s.value for s in FINISHED} == set(STORE_FINISHED)
    assert set(Status) == OPEN | FINISHED and not OPEN & FINISHED


def test_params_and_ids_stay_the_exact_stored_text() -> None:
    row = approval_row(params='{"name":"x", "arguments":{}}', request_id='"1"', progress_token="7")
    approval = Approval.from_row(row)
    assert (approval.params, approval.request_id, approval.progress_token) == (row.params, '"1"', "7")


def test_a_row_without_reviewers_or_routing_means_any_reviewer_and_no_routing() -> None:
    approval = Approval.from_row(approval_row())
    assert approval.reviewers is None
    assert approval.routing == {}
    assert approval.result is None


@pytest.mark.parametrize(
    ("result", "tool_error"),
    [
        ({"result": {"content": [{"type": "text", "text": "nope"}], "isError": True}}, True),
        ({"result": {"content": [{"type": "text", "text": "fine"}], "isError": False}}, False),
        ({"result": {"content": []}}, False),
        ({"error": {"code": -32603, "message": "boom"}}, False),
    ],
)
def test_a_tool_error_is_told_apart_from_a_success(result: dict[str, object], tool_error: bool) -> None:
    approval = Approval.from_row(approval_row(status="completed", result=json.dumps(result)))
    assert approval.tool_reported_error is tool_error
    assert approval.is_finished and not approval.is_open


def test_only_a_completed_call_reports_a_tool_error() -> None:
    stored = json.dumps({"result": {"isError": True}})
    assert not Approval.from_row(approval_row(status="failed", result=stored)).tool_reported_error


def test_the_stored_answers_parts_are_read_by_name() -> None:
    upstream_error = StoredResult.parse(json.dumps({"error": {"code": 1, "message": "m"}}))
    assert upstream_error.error == {"code": 1, "message": "m"} and upstream_error.result is None
    needs_input = StoredResult.parse(json.dumps({"result": {"resultType": "input_required"}}))
    assert needs_input.input_required and not needs_input.is_error


@pytest.mark.parametrize("garbage", ["not json", "[1, 2]", '"text"', "{"])
def test_undecodable_json_does_not_crash_and_keeps_the_stored_text(garbage: str) -> None:
    approval = Approval.from_row(
        approval_row(arguments=garbage, result=garbage, routing=garbage, forward_headers=garbage)
    )
    assert approval.arguments is None and approval.arguments_text == garbage
    assert approval.result is not None and approval.result.message is None and approval.result.text == garbage
    assert not approval.result.is_error and approval.result.texts == []
    assert approval.routing == {} and approval.forward_headers == {}


def test_a_routing_entry_that_is_not_an_object_is_ignored() -> None:
    approval = Approval.from_row(approval_row(routing='{"slack": ["#ops"], "other": {"x": 1}}'))
    assert approval.routing == {"other": {"x": 1}}


def test_undecodable_reviewers_fail_closed_as_nobody_may_decide() -> None:
    assert Approval.from_row(approval_row(reviewers="not json")).reviewers == ()
    assert Approval.from_row(approval_row(reviewers='{"a": 1}')).reviewers == ()


def test_an_approval_is_immutable_and_decodes_the_same_row_to_an_equal_value() -> None:
    approval = Approval.from_row(approval_row())
    with pytest.raises(dataclasses.FrozenInstanceError):
        approval.tool = "other"  # type: ignore[misc]
    assert Approval.from_row(approval_row()) == approval


def test_status_values_are_the_stored_strings() -> None:
    assert Status.OUTCOME_UNKNOWN.value == "outcome_unknown"
    assert Status.PENDING.is_open and Status.WITHDRAWN.is_finished
    assert Status.REJECTED.was_decided and not Status.EXPIRED.was_decided
