"""Reading Slack interaction payloads: which click, by whom, from where, and nothing else.

Provenance: Slack's interactivity payload format (reference notes, §2: `block_actions`,
`view_submission`, org-wide installs with a null `team`) and Airlock-defined action ids. Pure.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from app.slack.payloads import ButtonClick, Ignored, PayloadError, ReasonSubmitted, parse_interaction, reject_metadata


def body(payload: Any) -> bytes:
    return ("payload=" + quote(json.dumps(payload))).encode()


def click(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "api_app_id": "A1",
        "team": {"id": "T1"},
        "user": {"id": "U1", "name": "the-boss", "username": "the-boss", "team_id": "T1"},
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
        "channel": {"id": "C1"},
        "trigger_id": "t.1",
        "actions": [{"action_id": "airlock_approve", "value": "apr_1", "type": "button"}],
    }
    payload.update(changes)
    return payload


def test_a_click_is_read_as_verdict_approval_message_and_ids_only() -> None:
    parsed = parse_interaction(body(click()))
    assert isinstance(parsed, ButtonClick)
    assert (parsed.verdict, parsed.approval_id, parsed.channel_id, parsed.message_ts, parsed.trigger_id) == (
        "approve",
        "apr_1",
        "C1",
        "1.2",
        "t.1",
    )
    assert (parsed.actor.app_id, parsed.actor.team_id, parsed.actor.user_id) == ("A1", "T1", "U1")
    assert "the-boss" not in repr(parsed), "display names are never read"


def test_an_org_wide_install_with_no_team_falls_back_to_the_users_team() -> None:
    parsed = parse_interaction(body(click(team=None)))
    assert isinstance(parsed, ButtonClick) and parsed.actor.team_id == "T1"


def test_another_apps_action_and_other_interaction_types_are_ignored() -> None:
    other = click(actions=[{"action_id": "someone_elses", "value": "x"}])
    assert isinstance(parse_interaction(body(other)), Ignored)
    assert isinstance(parse_interaction(body({"type": "view_closed", "user": {"id": "U1"}})), Ignored)
    assert isinstance(
        parse_interaction(body({"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "other"}})),
        Ignored,
    )


def test_a_reason_submission_carries_the_approval_from_airlocks_metadata_and_the_typed_reason() -> None:
    payload = {
        "type": "view_submission",
        "api_app_id": "A1",
        "team": {"id": "T1"},
        "user": {"id": "U1", "team_id": "T1"},
        "view": {
            "callback_id": "airlock_reject_reason",
            "private_metadata": reject_metadata("apr_1", "C1"),
            "state": {"values": {"airlock_reason": {"reason": {"value": "too risky"}}}},
        },
    }
    parsed = parse_interaction(body(payload))
    assert isinstance(parsed, ReasonSubmitted)
    assert (parsed.approval_id, parsed.channel_id, parsed.reason) == ("apr_1", "C1", "too risky")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"payload=not-json",
        b"text=hello",
        body([1, 2]),
        body(click(user=None)),
        body(click(user={"id": ""})),
        b"payload=%ff%fe",
    ],
)
def test_a_body_that_is_not_an_interaction_payload_is_an_error(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_interaction(raw)
