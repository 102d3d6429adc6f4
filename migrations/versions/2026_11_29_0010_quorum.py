"""quorum

Quorum rules (issue 18, item 2): an approval records how many distinct reviewers must approve
(`quorum`, 1 for every approval parked before this), the rule's reviewer groups, and the names that
approved so far (`votes`); each approving vote is a row of `approval_votes`, unique per reviewer
identity, so the same reviewer approving twice counts once on every replica. The Slack outbox
records the votes its message shows (`rendered_votes`), so each vote updates the message.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ adds and drops columns in place), not a batch copy: the
    # approvals table is referenced by other tables' foreign keys, as in 0006.
    op.add_column("approvals", sa.Column("quorum", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column("approvals", sa.Column("reviewer_groups", sa.Text(), nullable=True))
    op.add_column("approvals", sa.Column("votes", sa.Text(), nullable=True))
    op.add_column("slack_outbox", sa.Column("rendered_votes", sa.Text(), nullable=True))
    op.create_table(
        "approval_votes",
        sa.Column("approval_id", sa.String(length=40), nullable=False),
        sa.Column("identity", sa.String(length=256), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approval_id"], ["approvals.id"], name=op.f("fk_approval_votes_approval_id_approvals")
        ),
        sa.PrimaryKeyConstraint("approval_id", "identity", name=op.f("pk_approval_votes")),
    )


def downgrade() -> None:
    op.drop_table("approval_votes")
    op.drop_column("slack_outbox", "rendered_votes")
    op.drop_column("approvals", "votes")
    op.drop_column("approvals", "reviewer_groups")
    op.drop_column("approvals", "quorum")
