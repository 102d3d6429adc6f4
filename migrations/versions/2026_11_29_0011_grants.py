"""grants

Scoped grants (issue 18, item 4): an approval records the rule's `grants` (`grant_policy`, NULL for
every approval parked before this: no grant is offered on it), and each grant a reviewer gives is a
row of `grants`, bound to one agent, upstream and tool (and, for an identical-call grant, one
arguments hash), time-boxed and revocable.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, as in 0010: the approvals table is referenced by other tables' foreign keys.
    op.add_column("approvals", sa.Column("grant_policy", sa.Text(), nullable=True))
    op.create_table(
        "grants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("upstream", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("args_hash", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("approval_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["approval_id"], ["approvals.id"], name=op.f("fk_grants_approval_id_approvals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
        sa.UniqueConstraint("approval_id", name=op.f("uq_grants_approval_id")),
    )
    op.create_index("ix_grants_call", "grants", ["agent", "upstream", "tool", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_grants_call", table_name="grants")
    op.drop_table("grants")
    op.drop_column("approvals", "grant_policy")
