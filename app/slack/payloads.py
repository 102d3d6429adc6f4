"""Slack interaction payloads → typed records: a button click, a reject reason submitted, or neither.

Pure module: takes the raw (already verified) request body, or over Socket Mode the payload
already parsed, and returns a value; no I/O.

Slack posts interactions as `application/x-www-form-urlencoded` with one `payload` field holding
JSON. Only what Airlock acts on is kept, and nothing about the reviewer but ids: `user.name` and
`user.username` are mutable display data and are never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from app.slack.blocks import (
    APPROVE_ACTION,
    APPROVE_GRANT_ACTION,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_ACTION,
    REJECT_CALLBACK,
)


class PayloadError(ValueError):
    """The body is not an interaction payload Airlock can read (answered 400)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who interacted, from which app and workspace (ids only)."""

    app_id: str | None
    team_id: str | None
    """`team.id`, or `user.team_id` when `team` is null (org-wide installs)."""
    user_id: str
    user_team_id: str | None


@dataclass(frozen=True, slots=True)
class ButtonClick:
    actor: Actor
    verdict: Literal["approve", "reject"]
    approval_id: str
    channel_id: str | None
    message_ts: str | None
    trigger_id: str | None
    grant: bool = False
    """Approve with the rule's grant of identical calls (the approve-with-grant button)."""


@dataclass(frozen=True, slots=True)
class ReasonSubmitted:
    """The reject modal was submitted (`view_submission`)."""

    actor: Actor
    approval_id: str
    channel_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """Anything else (another app's action, `view_closed`, …): acknowledged, nothing done."""

    kind: str


Interaction = ButtonClick | ReasonSubmitted | Ignored

_VERDICTS: dict[str, Literal["approve", "reject"]] = {
    APPROVE_ACTION: "approve",
    APPROVE_GRANT_ACTION: "approve",
    REJECT_ACTION: "reject",
}


def parse_interaction(body: bytes) -> Interaction:
    """Read one interaction request body.

    Raises:
        PayloadError: no `payload` field, or it is not a JSON object with a user id.
    """
    return interaction_of(_payload(body))


def interaction_of(payload: dict[str, Any]) -> Interaction:
    """Read one interaction payload that arrived already parsed (a Socket Mode envelope's `payload`).

    Raises:
        PayloadError: it names no user.
    """
    kind = str(payload.get("type", ""))
    if kind == "block_actions":
        return _click(payload)
    if kind == "view_submission":
        return _submission(payload)
    return Ignored(kind)


def reject_metadata(approval_id: str, channel_id: str | None) -> str:
    """The modal's `private_metadata`: set by Airlock when it opens the modal, returned on submit."""
    return json.dumps({"approval": approval_id, "channel": channel_id})


def _payload(body: bytes) -> dict[str, Any]:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        raise PayloadError("the body must be a form with a JSON `payload` field") from None
    if not isinstance(payload, dict):
        raise PayloadError("the payload must be a JSON object")
    return payload


def _actor(payload: dict[str, Any]) -> Actor:
    user = _object(payload.get("user"))
    team = _object(payload.get("team"))
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise PayloadError("the payload names no user")
    user_team_id = _str(user.get("team_id"))
    return Actor(
        app_id=_str(payload.get("api_app_id")),
        team_id=_str(team.get("id")) or user_team_id,
        user_id=user_id,
        user_team_id=user_team_id,
    )


def _click(payload: dict[str, Any]) -> Interaction:
    actions = payload.get("actions")
    action = _object(actions[0]) if isinstance(actions, list) and actions else {}
    verdict = _VERDICTS.get(str(action.get("action_id", "")))
    approval_id = _str(action.get("value"))
    if verdict is None or approval_id is None:
        return Ignored("block_actions")
    container = _object(payload.get("container"))
    channel = _object(payload.get("channel"))
    return ButtonClick(
        actor=_actor(payload),
        verdict=verdict,
        approval_id=approval_id,
        channel_id=_str(channel.get("id")) or _str(container.get("channel_id")),
        message_ts=_str(container.get("message_ts")) or _str(_object(payload.get("message")).get("ts")),
        trigger_id=_str(payload.get("trigger_id")),
        grant=action.get("action_id") == APPROVE_GRANT_ACTION,
    )


def _submission(payload: dict[str, Any]) -> Interaction:
    view = _object(payload.get("view"))
    if view.get("callback_id") != REJECT_CALLBACK:
        return Ignored("view_submission")
    try:
        metadata = _object(json.loads(str(view.get("private_metadata") or "{}")))
    except ValueError:
        raise PayloadError("the modal's private_metadata is not Airlock's") from None
    approval_id = _str(metadata.get("approval"))
    if approval_id is None:
        raise PayloadError("the modal's private_metadata names no approval")
    values = _object(_object(view.get("state")).get("values"))
    reason = _object(_object(values.get(REASON_BLOCK)).get(REASON_INPUT)).get("value")
    return ReasonSubmitted(
        actor=_actor(payload),
        approval_id=approval_id,
        channel_id=_str(metadata.get("channel")),
        reason=reason if isinstance(reason, str) else "",
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
