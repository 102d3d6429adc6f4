"""escalation

When, and to whom, a pending approval is escalated (`approvals.escalate_at`, `escalate_to`), and
when it was (`escalated_at`, set once by compare-and-set, see `app/approvals/escalation.py`); and
whether an approval's Slack message shows its escalation (`slack_outbox.escalation_shown`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not batch mode: a batch rebuilds the table on SQLite, which the foreign keys of
# streams and the outboxes refuse while they reference approvals (0006 does the same).


def upgrade() -> None:
    op.add_column("approvals", sa.Column("escalate_at", sa.Float(), nullable=True))
    op.add_column("approvals", sa.Column("escalate_to", sa.String(length=64), nullable=True))
    op.add_column("approvals", sa.Column("escalated_at", sa.Float(), nullable=True))
    op.create_index("ix_approvals_status_escalate_at", "approvals", ["status", "escalate_at"])
    op.add_column(
        "slack_outbox", sa.Column("escalation_shown", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("slack_outbox", "escalation_shown")
    op.drop_index("ix_approvals_status_escalate_at", table_name="approvals")
    op.drop_column("approvals", "escalated_at")
    op.drop_column("approvals", "escalate_to")
    op.drop_column("approvals", "escalate_at")
