"""Slack's fields out of the core approvals table

An approval row kept Slack's own data: the rule's Slack routing (`slack_routing`) and the posted
message's coordinates (`slack_channel`, `slack_ts`). Now:

- `approvals.routing` holds the rule's routing for every reviewer channel, by channel name
  (`{"slack": <the old slack_routing>}`), as `Decision.routing` carries it;
- the posted message's channel and ts live on Slack's own outbox row (`slack_outbox.channel`,
  `slack_outbox.ts`). An approval with a message but no outbox row (posted before the outbox
  existed) gets one, showing its current status.

The downgrade puts the data back where it was.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

approvals = sa.table(
    "approvals",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("updated_at", sa.Float),
    sa.column("routing", sa.Text),
    sa.column("slack_routing", sa.Text),
    sa.column("slack_channel", sa.String),
    sa.column("slack_ts", sa.String),
)
outbox = sa.table(
    "slack_outbox",
    sa.column("approval_id", sa.String),
    sa.column("channel", sa.String),
    sa.column("ts", sa.String),
    sa.column("rendered_status", sa.String),
    sa.column("settled", sa.Boolean),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.Float),
    sa.column("created_at", sa.Float),
    sa.column("updated_at", sa.Float),
)


_OUTBOX_COLUMNS = (
    "approval_id",
    "channel",
    "ts",
    "rendered_status",
    "settled",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


def upgrade() -> None:
    op.add_column("approvals", sa.Column("routing", sa.Text(), nullable=True))
    op.add_column("slack_outbox", sa.Column("ts", sa.String(length=64), nullable=True))
    op.execute(
        approvals.update()
        .where(approvals.c.slack_routing.is_not(None))
        .values(routing=sa.literal('{"slack": ') + approvals.c.slack_routing + sa.literal("}"))
    )
    posted = approvals.c.slack_ts.is_not(None)
    of_row = approvals.c.id == outbox.c.approval_id
    op.execute(
        outbox.update()
        .where(sa.select(approvals.c.id).where(of_row, posted).exists())
        .values(
            channel=sa.select(sa.func.coalesce(approvals.c.slack_channel, outbox.c.channel))
            .where(of_row)
            .scalar_subquery(),
            ts=sa.select(approvals.c.slack_ts).where(of_row).scalar_subquery(),
        )
    )
    unqueued = ~sa.select(outbox.c.approval_id).where(of_row).exists()
    op.execute(
        outbox.insert().from_select(
            [*_OUTBOX_COLUMNS],
            sa.select(
                approvals.c.id,
                sa.func.coalesce(approvals.c.slack_channel, ""),
                approvals.c.slack_ts,
                approvals.c.status,
                sa.false(),
                sa.literal(0),
                approvals.c.updated_at,
                approvals.c.updated_at,
                approvals.c.updated_at,
            ).where(posted, unqueued),
        )
    )
    op.drop_column("approvals", "slack_ts")
    op.drop_column("approvals", "slack_channel")
    op.drop_column("approvals", "slack_routing")


def downgrade() -> None:
    op.add_column("approvals", sa.Column("slack_routing", sa.Text(), nullable=True))
    op.add_column("approvals", sa.Column("slack_channel", sa.String(length=64), nullable=True))
    op.add_column("approvals", sa.Column("slack_ts", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    routed = conn.execute(sa.select(approvals.c.id, approvals.c.routing).where(approvals.c.routing.is_not(None)))
    for approval_id, routing in routed.all():
        slack = _slack_entry(routing)
        if slack is not None:
            conn.execute(approvals.update().where(approvals.c.id == approval_id).values(slack_routing=slack))
    of_row = outbox.c.approval_id == approvals.c.id
    op.execute(
        approvals.update()
        .where(sa.select(outbox.c.approval_id).where(of_row, outbox.c.ts.is_not(None)).exists())
        .values(
            slack_channel=sa.select(outbox.c.channel).where(of_row).scalar_subquery(),
            slack_ts=sa.select(outbox.c.ts).where(of_row).scalar_subquery(),
        )
    )
    op.drop_column("slack_outbox", "ts")
    op.drop_column("approvals", "routing")


def _slack_entry(routing: str) -> str | None:
    try:
        value = json.loads(routing)
    except ValueError:
        return None
    slack = value.get("slack") if isinstance(value, dict) else None
    return None if slack is None else json.dumps(slack)
