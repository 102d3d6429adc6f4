"""tasks

Held calls as MCP tasks (see `app/tasks/`): one row per task, bound to the agent that created it.
A task on a held call is a view of its approval (`approval_id`); a task on a call the policy
allowed at once keeps the upstream's answer itself (`result`), or Airlock's own (a refusal, a run
it lost; its sentence in `note`), and renews `lease_until` while that call runs. No foreign key to `approvals`:
pruning a finished approval must not wait for its task, which then reads as expired.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("upstream", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("approval_id", sa.String(length=40), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("cancelled_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("approval_id", name=op.f("uq_tasks_approval_id")),
    )
    op.create_index("ix_tasks_agent_created_at", "tasks", ["agent", "created_at"], unique=False)
    op.create_index("ix_tasks_expires_at", "tasks", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tasks_expires_at", table_name="tasks")
    op.drop_index("ix_tasks_agent_created_at", table_name="tasks")
    op.drop_table("tasks")
