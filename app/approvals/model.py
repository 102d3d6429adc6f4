"""An approval as the rest of Airlock reads it: typed, immutable, decoded once from its row.

`Approval.from_row(row)` is the one place an approval's stored JSON text (arguments, reviewers,
routing, the upstream's answer, forwarded headers) is decoded; channels, wording, the API and the
CLI receive an `Approval` and never call `json.loads` on a column. The row
(`app/store/approvals.py::ApprovalRow`) stays what SQL reads and writes; this module is what
that data means.

A row whose JSON cannot be decoded does not crash a reader (invariant 8, fail closed): the parsed
value is `None` (or empty) and the stored text is kept beside it, so a channel can still show
exactly what was stored; a reviewer list that does not decode names nobody, so nobody may decide.
Rows Airlock wrote always decode.

Deliberately kept as text:
- `params`: the exact `params` bytes the executor sends (invariant 1: what was judged is what runs);
  re-encoding a parsed copy could change them.
- `request_id` and `progress_token`: JSON text of the agent's ids, echoed back byte for byte by the
  transports that own them.

Slack's message coordinates are not here: they belong to the Slack channel (`slack_outbox`).

Pure module: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from app.policy.engine import GrantPolicy, GrantScope
from app.protocol import Era
from app.store.approvals import ApprovalRow
from app.types import JSONObject


class Status(StrEnum):
    """Where an approval is in its lifecycle (`docs/architecture.md`, "Approval states").

    The values are what the database stores in `approvals.status`; do not change them.
    """

    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    """The upstream answered; the result may still be a tool error (see `Approval.tool_reported_error`)."""
    FAILED = "failed"
    """It did not run, or the upstream answered with a JSON-RPC error."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"

    @property
    def is_open(self) -> bool:
        """The outcome is still to come."""
        return self in OPEN

    @property
    def is_finished(self) -> bool:
        """It will never change again."""
        return self in FINISHED

    @property
    def was_decided(self) -> bool:
        """A reviewer approved or rejected it (as opposed to pending, expired or withdrawn)."""
        return self not in (Status.PENDING, Status.EXPIRED, Status.WITHDRAWN)


OPEN: Final = frozenset({Status.PENDING, Status.APPROVED, Status.EXECUTING})
FINISHED: Final = frozenset(Status) - OPEN


@dataclass(frozen=True, slots=True)
class StoredResult:
    """The upstream's stored answer to an approved call: a whole JSON-RPC response message."""

    text: str
    """As stored."""
    message: JSONObject | None
    """`text` decoded; None when it is not a JSON object (never for an answer Airlock stored)."""

    @classmethod
    def parse(cls, text: str) -> StoredResult:
        return cls(text, _object(text))

    @property
    def result(self) -> JSONObject | None:
        """The JSON-RPC `result` member (a `CallToolResult`), if it is an object."""
        value = (self.message or {}).get("result")
        return value if isinstance(value, dict) else None

    @property
    def error(self) -> JSONObject | None:
        """The JSON-RPC `error` member, if it is an object."""
        value = (self.message or {}).get("error")
        return value if isinstance(value, dict) else None

    @property
    def is_error(self) -> bool:
        """The tool answered, and said it failed (`isError: true`)."""
        return self.result is not None and bool(self.result.get("isError"))

    @property
    def input_required(self) -> bool:
        """2026-07-28: the upstream asked the agent for input before the tool runs."""
        return self.result is not None and self.result.get("resultType") == "input_required"

    @property
    def texts(self) -> list[str]:
        """The result's text content items, in order."""
        content = (self.result or {}).get("content")
        items = content if isinstance(content, list) else []
        return [
            item["text"]
            for item in items
            if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)
        ]


@dataclass(frozen=True, slots=True)
class Approval:
    """One parked call and what became of it. Times are UNIX epoch seconds."""

    id: str
    upstream: str
    tool: str
    agent: str
    arguments: JSONObject | None
    """The call's arguments; None only when the stored text is not a JSON object."""
    arguments_text: str
    """The arguments as stored (canonical JSON, as hashed into `args_hash`)."""
    args_hash: str
    params: str
    forward_headers: Mapping[str, str]
    era: Era
    protocol_version: str
    session_id: str | None
    request_id: str
    progress_token: str | None
    policy_rule: str
    policy_reason: str | None
    policy_version: str
    reviewers: tuple[str, ...] | None
    """Who may decide, by the rule; None: any reviewer (unless `reviewer_groups` names groups)."""
    reviewer_groups: tuple[str, ...] | None
    """The groups whose members may decide, by the rule, besides `reviewers`; None: no group named."""
    quorum: int
    """How many distinct reviewers must approve (1: the first decision decides)."""
    votes: tuple[str, ...]
    """The reviewers who approved so far, in order (all of them, once it is approved)."""
    routing: Mapping[str, Mapping[str, Any]]
    """The rule's routing, by reviewer channel (`{"slack": {"channel": …, "users": […]}}`); each
    channel interprets its own entry (`routing_for`)."""
    status: Status
    created_at: float
    expires_at: float
    updated_at: float
    attach_seq: int
    decided_by: str | None
    decided_via: str | None
    decided_at: float | None
    decision_reason: str | None
    executor: str | None
    lease_until: float | None
    executed_at: float | None
    finished_at: float | None
    result: StoredResult | None
    """The upstream's answer, once it answered (`completed`, or `failed` with a JSON-RPC error)."""
    outcome: str | None
    """The executor's one-line account of the outcome, as the audit log records it."""
    delivered_at: float | None
    continues: str | None
    """The approval whose `input_required` round this one continues (2026-07-28), if any."""
    withdraw_at: float | None
    withdraw_seq: int | None
    escalate_at: float | None = None
    """When it is (or was) escalated if still undecided; None: its rule does not escalate."""
    escalate_to: str | None = None
    """The `[escalation.<name>]` target it is escalated to."""
    escalated_at: float | None = None
    """When it was escalated (None: not, or not yet)."""
    grant_policy: GrantPolicy | None = None
    """The scoped grants its rule lets a reviewer give with the approval (None: none)."""

    @classmethod
    def from_row(cls, row: ApprovalRow) -> Approval:
        """`row` decoded: the one place an approval's stored JSON is parsed."""
        return cls(
            id=row.id,
            upstream=row.upstream,
            tool=row.tool,
            agent=row.agent,
            arguments=_object(row.arguments),
            arguments_text=row.arguments,
            args_hash=row.args_hash,
            params=row.params,
            forward_headers={str(k): str(v) for k, v in (_object(row.forward_headers) or {}).items()},
            era=Era(row.era),
            protocol_version=row.protocol_version,
            session_id=row.session_id,
            request_id=row.request_id,
            progress_token=row.progress_token,
            policy_rule=row.policy_rule,
            policy_reason=row.policy_reason,
            policy_version=row.policy_version,
            reviewers=_names(row.reviewers),
            reviewer_groups=_names(row.reviewer_groups),
            quorum=row.quorum,
            votes=_names(row.votes) or (),
            routing=routing_of(row.routing),
            status=Status(row.status),
            created_at=row.created_at,
            expires_at=row.expires_at,
            updated_at=row.updated_at,
            attach_seq=row.attach_seq,
            decided_by=row.decided_by,
            decided_via=row.decided_via,
            decided_at=row.decided_at,
            decision_reason=row.decision_reason,
            executor=row.executor,
            lease_until=row.lease_until,
            executed_at=row.executed_at,
            finished_at=row.finished_at,
            result=None if row.result is None else StoredResult.parse(row.result),
            outcome=row.outcome,
            delivered_at=row.delivered_at,
            continues=row.continues,
            withdraw_at=row.withdraw_at,
            withdraw_seq=row.withdraw_seq,
            escalate_at=row.escalate_at,
            escalate_to=row.escalate_to,
            escalated_at=row.escalated_at,
            grant_policy=grant_policy_of(row.grant_policy),
        )

    def routing_for(self, channel: str) -> Mapping[str, Any]:
        """What the rule says about `channel` (e.g. `"slack"`); empty when nothing."""
        return self.routing.get(channel, {})

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def needs_quorum(self) -> bool:
        """The rule asks for more than one approval."""
        return self.quorum > 1

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def tool_reported_error(self) -> bool:
        """It ran, the tool answered, and the answer says it failed (`isError: true`).

        The status is `completed` either way; this is what tells a tool error from a success.
        """
        return self.status is Status.COMPLETED and self.result is not None and self.result.is_error


def routing_of(text: str | None) -> Mapping[str, Mapping[str, Any]]:
    """A rule's stored per-channel routing, decoded (empty when there is none or it does not decode)."""
    decoded = (_object(text) or {}) if text else {}
    return {channel: entry for channel, entry in decoded.items() if isinstance(entry, dict)}


def _object(text: str) -> JSONObject | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return ()
    return tuple(str(name) for name in value) if isinstance(value, list) else ()


def grant_policy_json(policy: GrantPolicy) -> str:
    """A rule's `grants` as stored with its approvals."""
    return json.dumps({"max_minutes": policy.max_minutes, "scope": list(policy.scopes)})


def grant_policy_of(text: str | None) -> GrantPolicy | None:
    """The stored `grants` decoded; anything malformed offers no grant (fail closed)."""
    value = None if text is None else _object(text)
    if value is None:
        return None
    minutes, scopes = value.get("max_minutes"), value.get("scope")
    if type(minutes) is not int or minutes < 1 or not isinstance(scopes, list):
        return None
    known: tuple[GrantScope, ...] = tuple(scope for scope in ("identical", "tool") if scope in scopes)
    return GrantPolicy(minutes, known) if known else None
