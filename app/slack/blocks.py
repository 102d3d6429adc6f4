"""Block Kit for an approval: the channel message (with buttons while pending, the outcome after), the
reject-reason modal, and their plain-text fallbacks.

Pure module: builds dictionaries from an `Approval` (`app/approvals/model.py`); no I/O. The words (titles, the outcome
paragraph) are `app/approvals/wording.py`'s; this module gives them Slack's voice (escaped mrkdwn,
`<!date…>` times, the verb in bold) and an emoji per outcome kind.

Everything that came from an agent (tool name, arguments, agent and upstream names, results) is
untrusted text. In `mrkdwn` it is escaped (`&`, `<`, `>`), so `<!channel>` or `<http://evil|x>`
inside arguments is shown, never acted on; `plain_text` objects are not parsed and need no
escaping. Both kinds first go through `app/reveal.py`: invisible and bidirectional control
characters are shown as `\u202e`-style escapes, so what a reviewer reads in Slack is what runs
(names on one line: their newlines and tabs are revealed too). Every piece is cut to Block Kit's
limits (header 150, section 3000, field 2000), and the
arguments get a fixed budget so the whole message stays far below the ~13k characters at which
Slack answers `msg_blocks_too_long`; what is cut is linked to the web inbox.

Buttons carry only the approval id: who may click, and what the click does, is read from the
database when the click arrives (so buttons survive restarts and cannot smuggle state).

Deliberate departures:
- block ids carry the rendered status (`…:pending`, `…:approved`), as Slack asks for a new block id
  when a message is updated.
- Code fences: three backticks inside an argument would close the fence early, so each run of them
  gets zero-width spaces between the backticks (it displays the same).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.approvals import wording
from app.approvals.model import Approval, Status
from app.approvals.wording import Kind, iso, review_url
from app.reveal import reveal

SLACK: Final = "slack"
"""This channel's name in a rule's routing (`Approval.routing_for`): the policy's `slack` object."""
APPROVE_ACTION: Final = "airlock_approve"
APPROVE_GRANT_ACTION: Final = "airlock_approve_grant"
"""Approve with a grant of identical calls for the rule's longest grant (`app/approvals/grants.py`)."""
REJECT_ACTION: Final = "airlock_reject"
REJECT_CALLBACK: Final = "airlock_reject_reason"
REASON_BLOCK: Final = "airlock_reason"
REASON_INPUT: Final = "reason"

HEADER_LIMIT: Final = 150
SECTION_LIMIT: Final = 3000
FIELD_LIMIT: Final = 2000
BUTTON_VALUE_LIMIT: Final = 2000
ARGUMENTS_BUDGET: Final = 2600
"""Characters of escaped arguments shown in the message (the rest is behind the inbox link)."""
REASON_BUDGET: Final = 1000
SUMMARY_BUDGET: Final = 300
FALLBACK_LIMIT: Final = 300
REASON_MAX_LENGTH: Final = 2000

_FENCE: Final = "```"
_SLACK_USER: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_USERGROUP: Final = re.compile(r"^S[A-Z0-9]{2,}$")

_EMOJI: Final = {
    Kind.APPROVED: ":hourglass_flowing_sand:",
    Kind.RUNNING: ":hourglass_flowing_sand:",
    Kind.SUCCEEDED: ":white_check_mark:",
    Kind.TOOL_ERROR: ":warning:",
    Kind.TOO_LARGE: ":warning:",
    Kind.INPUT_REQUIRED: ":speech_balloon:",
    Kind.UPSTREAM_ERROR: ":warning:",
    Kind.NOT_DELIVERED: ":warning:",
    Kind.UNKNOWN: ":grey_question:",
    Kind.REJECTED: ":x:",
    Kind.EXPIRED: ":hourglass:",
    Kind.WITHDRAWN: ":leftwards_arrow_with_hook:",
}


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message: the notification/fallback `text` (always set) and its `blocks`."""

    text: str
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Untrusted text as `mrkdwn`: hidden characters revealed, then Slack's three control characters escaped."""
    return reveal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def name(text: str) -> str:
    """An agent-chosen name (tool, agent, upstream) on one line, hidden characters revealed (not yet escaped)."""
    return reveal(text, line=True)


def cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escaped_within(text: str, limit: int) -> tuple[str, bool]:
    """Escape `text` and keep at most `limit` characters of the result without splitting an entity.

    Returns the escaped text and whether anything was left out.
    """
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = escape(char)
        if used + len(piece) > limit:
            return "".join(pieces), True
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces), False


def slack_date(timestamp: float) -> str:
    """A date Slack shows in each reader's time zone, with the UTC ISO time as the fallback."""
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{iso(timestamp)}>"


def approval_message(approval: Approval, public_url: str, *, escalated_to: str | None = None) -> Message:
    """The channel message for `approval` in its current status.

    Args:
        escalated_to: how the escalation target is named in Slack (its channel), once escalated.
    """
    url = review_url(public_url, approval.id)
    blocks: list[dict[str, Any]] = [
        _header(approval),
        _fields(approval),
        *_policy(approval),
        *_arguments(approval, url),
        *_escalation(approval, escalated_to),
    ]
    if approval.status is Status.PENDING:
        blocks.extend(_mentions(approval))
        if approval.needs_quorum:  # "Waiting for 1 more approval (1 of 2 approvals, by alice)"
            blocks.append(_context(approval, outcome_line(approval), "quorum"))
        blocks.append(_buttons(approval))
    else:
        blocks.append(_outcome(approval))
    blocks.append(_context(approval, f"<{escape(url)}|Open approval {escape(approval.id)} in Airlock>", "link"))
    return Message(text=fallback_text(approval), blocks=blocks)


def escalation_message(approval: Approval, public_url: str) -> Message:
    """The notice an escalation target's Slack channel gets: which call waits, and where to decide it."""
    url = review_url(public_url, approval.id)
    text = wording.escalation_notice(approval, VOICE, f"<{escape(url)}|{escape(url)}>")
    block = {
        "type": "section",
        "block_id": _block_id(approval, "escalation-notice"),
        "text": {"type": "mrkdwn", "text": cut(f":rotating_light: {text}", SECTION_LIMIT)},
    }
    fallback = escape(cut(wording.escalation_notice(approval, _PLAIN_NAMES, url), FALLBACK_LIMIT))
    return Message(text=fallback, blocks=[block])


def _escalation(approval: Approval, escalated_to: str | None) -> list[dict[str, Any]]:
    sentence = wording.escalation_sentence(approval, escalated_to)
    return [] if sentence is None else [_context(approval, f":rotating_light: {escape(sentence)}", "escalation")]


def fallback_text(approval: Approval) -> str:
    """The message's `text`: what notifications and screen readers show (escaped mrkdwn)."""
    return escape(cut(wording.headline(approval, _PLAIN_NAMES), FALLBACK_LIMIT))


_PLAIN_NAMES: Final = wording.Voice(time=slack_date, name=name)
"""For the fallback text, which is escaped as a whole."""


def _block_id(approval: Approval, part: str) -> str:
    # An escalation changes the message without changing the status: it needs new block ids too.
    escalated = ":escalated" if approval.escalated_at is not None else ""
    return f"{part}:{approval.id}:{approval.status}{escalated}"[:255]


def _header(approval: Approval) -> dict[str, Any]:
    title = wording.title(wording.outcome_of(approval).kind)
    return {
        "type": "header",
        "block_id": _block_id(approval, "header"),
        "text": {"type": "plain_text", "text": cut(f"{title}: {name(approval.tool)}", HEADER_LIMIT), "emoji": False},
    }


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": cut(f"*{label}:*\n{value}", FIELD_LIMIT)}


def _fields(approval: Approval) -> dict[str, Any]:
    return {
        "type": "section",
        "block_id": _block_id(approval, "fields"),
        "fields": [
            _field("Agent", escape(cut(name(approval.agent), 200))),
            _field("Upstream", escape(cut(name(approval.upstream), 200))),
            _field("Approval", f"`{escape(approval.id)}`"),
            _field("Expires" if approval.status is Status.PENDING else "Expiry", slack_date(approval.expires_at)),
        ],
    }


def _policy(approval: Approval) -> list[dict[str, Any]]:
    rule = escape(cut(name(approval.policy_rule), 200))
    text = (
        f"*Policy:* {escape(cut(approval.policy_reason, REASON_BUDGET))} (rule `{rule}`)"
        if approval.policy_reason
        else f"*Policy:* rule `{rule}`"
    )
    return [{"type": "section", "block_id": _block_id(approval, "policy"), "text": {"type": "mrkdwn", "text": text}}]


def _arguments(approval: Approval, url: str) -> list[dict[str, Any]]:
    if approval.arguments is None:
        pretty = approval.arguments_text
    else:
        pretty = json.dumps(approval.arguments, indent=2, ensure_ascii=False)
    shown, truncated = escaped_within(pretty, ARGUMENTS_BUDGET)
    shown = shown.replace(_FENCE, "`\u200b`\u200b`") + ("\u200b" if shown.endswith("`") else "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "block_id": _block_id(approval, "arguments"),
            "text": {"type": "mrkdwn", "text": f"*Arguments:*\n{_FENCE}{shown}{_FENCE}"},
        }
    ]
    if truncated:
        note = (
            f":scissors: Arguments truncated ({len(pretty)} characters); "
            f"<{escape(url)}|see them in full in the web inbox> before deciding."
        )
        blocks.append(_context(approval, note, "truncated"))
    return blocks


def _mentions(approval: Approval) -> list[dict[str, Any]]:
    routing = approval.routing_for(SLACK)
    users = [f"<@{u}>" for u in _ids(routing, "users") if _SLACK_USER.match(u)]
    groups = [f"<!subteam^{g}>" for g in _ids(routing, "usergroups") if _SLACK_USERGROUP.match(g)]
    if not users and not groups:
        return []
    return [_context(approval, "Reviewers: " + " ".join(users + groups), "reviewers")]


def _ids(routing: Mapping[str, Any], key: str) -> list[str]:
    value = routing.get(key)
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _buttons(approval: Approval) -> dict[str, Any]:
    value = approval.id[:BUTTON_VALUE_LIMIT]
    tool = cut(name(approval.tool), 80)
    confirm = {
        "title": {"type": "plain_text", "text": "Approve this call?"},
        "text": {
            "type": "plain_text",
            "text": cut(
                f"{name(approval.agent)} will run {tool} on {name(approval.upstream)} with the arguments shown, once.",
                300,
            ),
        },
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "primary",
    }
    return {
        "type": "actions",
        "block_id": _block_id(approval, "decide"),
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "value": value,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "confirm": confirm,
            },
            *_grant_button(approval, value),
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "value": value,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject…"},
            },
        ],
    }


def _grant_button(approval: Approval, value: str) -> list[dict[str, Any]]:
    """The approve-with-grant button, where the rule offers grants (identical calls only: one click
    cannot say more, and a tool-wide grant is for channels that let the reviewer choose)."""
    policy = approval.grant_policy
    if policy is None or approval.needs_quorum:
        return []
    confirm = {
        "title": {"type": "plain_text", "text": "Approve with a grant?"},
        "text": {"type": "plain_text", "text": cut(wording.grant_button_confirm(approval, policy.max_minutes), 300)},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    text = {"type": "plain_text", "text": cut(wording.grant_button(policy.max_minutes), 75)}
    return [{"type": "button", "action_id": APPROVE_GRANT_ACTION, "value": value, "text": text, "confirm": confirm}]


def _outcome(approval: Approval) -> dict[str, Any]:
    return {
        "type": "section",
        "block_id": _block_id(approval, "outcome"),
        "text": {"type": "mrkdwn", "text": cut(outcome_line(approval), SECTION_LIMIT)},
    }


VOICE: Final = wording.Voice(
    time=slack_date,
    name=lambda text: escape(cut(name(text), 200)),
    text=lambda text: escape(cut(text, REASON_BUDGET)),
    strong=lambda verb: f"*{verb}*",
)
"""Slack's voice: dates each reader sees in their own time zone, escaped names and text, a bold verb."""


def outcome_line(approval: Approval) -> str:
    """Who decided, when, and what came of it, as escaped mrkdwn (`app/approvals/wording.py`'s account)."""
    emoji = _EMOJI.get(wording.outcome_of(approval).kind)
    text = wording.account(approval, VOICE)
    return f"{emoji} {text}" if emoji else text


def _context(approval: Approval, text: str, part: str) -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": _block_id(approval, part),
        "elements": [{"type": "mrkdwn", "text": cut(text, FIELD_LIMIT)}],
    }


def reject_modal(approval: Approval, private_metadata: str) -> dict[str, Any]:
    """The modal that asks a reviewer why they reject `approval` (submitting it rejects the call)."""
    intro = (
        f"Reject *{escape(cut(name(approval.tool), 200))}* for *{escape(cut(name(approval.agent), 100))}* "
        f"(`{escape(approval.id)}`)? The agent is told who rejected it and why."
    )
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": private_metadata[:3000],
        "title": {"type": "plain_text", "text": "Reject call"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(intro, SECTION_LIMIT)}},
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "min_length": 1,
                    "max_length": REASON_MAX_LENGTH,
                },
            },
        ],
    }
