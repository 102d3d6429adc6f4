"""Airlock's tables, as SQLAlchemy Core metadata.

Core rather than the ORM: every query is an explicit statement in a store module, state moves only
through conditional UPDATEs whose row count says who won, and there is no lazy loading to forbid.
The schema itself exists only through the Alembic migrations in `migrations/`; this metadata is
what the store's queries are written against and what `alembic check` compares them with.

Times are UNIX epoch seconds (double precision): the same arithmetic and comparisons in SQLite and
PostgreSQL, with no time-zone conversion to get wrong.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agent_tokens = Table(
    "agent_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent", String(64), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(24), nullable=False),
    Column("label", String(200)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

reviewers = Table(
    "reviewers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("slack_user_id", String(32), unique=True),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float),
    Column("signed_out_at", Float),
)
"""`signed_out_at`: inbox sessions signed in before it are over (sign-out revokes copies of the cookie)."""

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent", String(64), nullable=False),
    Column("upstream", String(64), nullable=False),
    Column("upstream_session_id", String(256)),
    Column("protocol_version", String(32), nullable=False),
    Column("initialize_params", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("closed_at", Float),
    Column("last_used_at", Float, nullable=False),
    Index("ix_sessions_agent_closed_at", "agent", "closed_at"),
    Index("ix_sessions_closed_at_last_used_at", "closed_at", "last_used_at"),
)
"""A handshake-era session. `last_used_at` is refreshed at most every few seconds (see
`app/sessions.py`); a session idle past `[sessions] idle_seconds` is closed by the janitor."""

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("upstream", String(64), nullable=False),
    Column("tool", String(256), nullable=False),
    Column("agent", String(64), nullable=False),
    Column("arguments", Text, nullable=False),
    Column("args_hash", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("forward_headers", Text, nullable=False),
    Column("era", String(16), nullable=False),
    Column("protocol_version", String(32), nullable=False),
    Column("session_id", String(64)),
    Column("request_id", Text, nullable=False),
    Column("progress_token", Text),
    Column("policy_rule", String(200), nullable=False),
    Column("policy_reason", Text),
    Column("policy_version", String(64), nullable=False),
    Column("reviewers", Text),
    Column("routing", Text),
    Column("status", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("attach_seq", Integer, nullable=False, server_default=text("0")),
    Column("decided_by", String(64)),
    Column("decided_via", String(16)),
    Column("decided_at", Float),
    Column("decision_reason", Text),
    Column("executor", String(64)),
    Column("lease_until", Float),
    Column("executed_at", Float),
    Column("finished_at", Float),
    Column("result", Text),
    Column("outcome", Text),
    Column("delivered_at", Float),
    Column("continues", String(40)),
    Column("withdraw_at", Float),
    Column("withdraw_seq", Integer),
    Column("quorum", Integer, nullable=False, server_default=text("1")),
    Column("reviewer_groups", Text),
    Column("votes", Text),
    Column("escalate_at", Float),
    Column("escalate_to", String(64)),
    Column("escalated_at", Float),
    Column("grant_policy", Text),
    Index("ix_approvals_status_expires_at", "status", "expires_at"),
    Index("ix_approvals_updated_at", "updated_at"),
    Index("ix_approvals_agent_status", "agent", "status"),
    Index("ix_approvals_call", "agent", "upstream", "tool", "args_hash"),
    Index(
        "uq_approvals_one_pending_call",
        "agent",
        "upstream",
        "tool",
        "args_hash",
        unique=True,
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("uq_approvals_continues", "continues", unique=True),
    Index("ix_approvals_status_withdraw_at", "status", "withdraw_at"),
    Index("ix_approvals_status_escalate_at", "status", "escalate_at"),
)
"""One row per parked call. `status` moves only by compare-and-set (see `app/store/approvals.py`);
the partial unique index keeps one pending approval per identical call even across replicas.
`routing`: the rule's per-channel routing as JSON (`{"slack": {...}}`, see `Decision.routing`);
what a channel keeps about its own messages lives in its own table (`slack_outbox`).
`escalate_at`/`escalate_to`: when, and to which `[escalation.<name>]` target, a pending approval is
escalated (NULL: its rule does not escalate); `escalated_at`: when it was, set once by
compare-and-set (`app/approvals/escalation.py`).
`grant_policy`: the rule's `grants` as JSON (`{"max_minutes": N, "scope": [...]}`), NULL when the
rule offers none (`app/approvals/grants.py`)."""

streams = Table(
    "streams",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("approval_id", String(40), ForeignKey("approvals.id"), nullable=False, index=True),
    Column("agent", String(64), nullable=False),
    Column("session_id", String(64)),
    Column("request_id", Text, nullable=False),
    Column("progress_token", Text),
    Column("hold_until", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_streams_hold_until", "hold_until"),
)
"""A held request's SSE stream. Its id is the unguessable half of every event id on it."""

cancelled_requests = Table(
    "cancelled_requests",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("request_id", Text, primary_key=True),
    Column("cancelled_at", Float, nullable=False, index=True),
)
"""`notifications/cancelled` seen for a handshake-era request, kept a while: a cancellation can
overtake the call it cancels (the call is still being judged or parked), and the call must then be
withdrawn as soon as it is parked (see `ApprovalQueue.cancel_request`)."""

stream_events = Table(
    "stream_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream_id", String(40), ForeignKey("streams.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("stream_id", "seq"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("event", String(20), nullable=False),
    Column("agent", String(64)),
    Column("upstream", String(64)),
    Column("tool", String(256)),
    Column("decision", String(20)),
    Column("rule", String(200)),
    Column("policy_version", String(64)),
    Column("latency_ms", Float),
    Column("outcome", Text),
    Column("argument_keys", Text),
    Column("args_hash", String(64)),
    Column("arguments", Text),
    Column("approval_id", String(40), index=True),
    Column("actor", String(64)),
    Column("detail", Text),
)

rate_counters = Table(
    "rate_counters",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
"""Fixed-window counters shared by every replica: one atomic upsert per rate-limited call."""

slack_outbox = Table(
    "slack_outbox",
    metadata,
    Column("approval_id", String(40), ForeignKey("approvals.id"), primary_key=True),
    Column("channel", String(100), nullable=False),
    Column("ts", String(64)),
    Column("rendered_status", String(20)),
    Column("rendered_votes", Text),
    Column("settled", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("escalation_shown", Boolean, nullable=False, server_default=false()),
    Index("ix_slack_outbox_settled_next_attempt_at", "settled", "next_attempt_at"),
)
"""Slack's durable outbox: one row per approval that has (or should have) a Slack message.

`channel` is where the message goes, then (once posted) the channel id Slack answered, and `ts`
the posted message's timestamp: the message clicks are checked against (NULL: not posted yet).

The wanted state is the approval row itself; `rendered_status` is the status the message in Slack
shows (NULL: not posted yet), and `rendered_votes` the quorum votes it shows (the approval's `votes`).
A row is due while the two differ; `settled` marks rows that never
will again (a finished status is shown, or Airlock gave up). Replicas take a row with a
compare-and-set lease (`lease_owner`, `lease_until`), see `app/store/slack_outbox.py`.
`escalation_shown`: the approval's escalation is in the message, and its escalation target's
Slack channel (if any) was sent a notice; a row is also due while an escalated approval's is not."""

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("event_id", String(40), primary_key=True),
    Column("approval_id", String(40), ForeignKey("approvals.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("settled", Boolean, nullable=False, server_default=false()),
    Column("delivered_at", Float),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("approval_id", "seq"),
    Index("ix_webhook_outbox_settled_next_attempt_at", "settled", "next_attempt_at"),
    Index("ix_webhook_outbox_created_at", "created_at"),
)
"""The webhook's durable outbox: one row per event (an approval parked, or moved to a status).

`seq` is the status's place on the approval's path (pending 1; approved, rejected, expired or
withdrawn 2; executing 3; completed, failed or outcome_unknown 4), so an event is written once
however many processes saw the change, and a receiver can order an approval's events by it.
`body` is the JSON sent, byte for byte, on every attempt. `settled`: delivered (`delivered_at`)
or given up (`last_error` says why). See `app/store/webhook_outbox.py`."""

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("approval_id", String(40), ForeignKey("approvals.id"), primary_key=True),
    Column("identity", String(256), primary_key=True),
    Column("reviewer", String(64), nullable=False),
    Column("via", String(16), nullable=False),
    Column("at", Float, nullable=False),
)
"""Each approving vote on a quorum rule's approval (`app/store/votes.py`): one per reviewer
identity (`identity`, `app/identity.py::identity_key`), whatever the channel, so the same
reviewer approving twice counts once. Written in the transaction that counts it; the approval's
`votes` column repeats the names in order so every reader shows progress without a join."""

webhook_signatures = Table(
    "webhook_signatures",
    metadata,
    Column("signature", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)
"""Signatures of decision requests already accepted, kept while their timestamp is within the
tolerance: the same signature again is a replay, on any replica."""

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent", String(200), nullable=False),
    Column("upstream", String(200), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("approval_id", String(40), unique=True),
    Column("result", Text),
    Column("note", Text),
    Column("lease_until", Float),
    Column("cancelled_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_tasks_agent_created_at", "agent", "created_at"),
    Index("ix_tasks_expires_at", "expires_at"),
)
"""MCP tasks (2025-11-25) on `tools/call` (see `app/tasks/`): bound to `agent`, unguessable `id`.

A task on a held call is a view of its approval (`approval_id`, one task per approval); one on a
call the policy allowed keeps the upstream's JSON-RPC answer in `result` (NULL while it runs, while
the process running it renews `lease_until`); when Airlock answered instead (a refusal, a run whose
process died), `result` is Airlock's answer and `note` its sentence.
`cancelled_at`: the agent cancelled it (`tasks/cancel`). After `expires_at` the task is gone."""

grants = Table(
    "grants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("agent", String(200), nullable=False),
    Column("upstream", String(200), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("args_hash", String(64)),
    Column("created_by", String(64), nullable=False),
    Column("approval_id", String(40), ForeignKey("approvals.id"), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("revoked_by", String(64)),
    Index("ix_grants_call", "agent", "upstream", "tool", "expires_at"),
)
"""Scoped grants (`app/approvals/grants.py`, `app/store/grants.py`): a reviewer's approval that also
lets the same agent make the same call (`args_hash` set: identical arguments) or any call of the
same tool (`args_hash` NULL) until `expires_at`, unless revoked (`revoked_at`, set once by
compare-and-set). At most one grant per approval (`approval_id` is unique)."""
