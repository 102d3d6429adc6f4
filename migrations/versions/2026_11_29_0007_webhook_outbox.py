"""webhook outbox

The durable outbox behind the webhook review channel (see `app/webhook/outbox.py`): one row per
approval event, with its body and the retry/lease bookkeeping; and the signatures of decision
requests already accepted (`app/webhook/decisions.py`), so a replayed request is refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("approval_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("settled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approval_id"], ["approvals.id"], name=op.f("fk_webhook_outbox_approval_id_approvals")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("approval_id", "seq", name=op.f("uq_webhook_outbox_approval_id_seq")),
    )
    op.create_index(
        "ix_webhook_outbox_settled_next_attempt_at", "webhook_outbox", ["settled", "next_attempt_at"], unique=False
    )
    op.create_index("ix_webhook_outbox_created_at", "webhook_outbox", ["created_at"], unique=False)
    op.create_table(
        "webhook_signatures",
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_webhook_signatures")),
    )
    op.create_index("ix_webhook_signatures_expires_at", "webhook_signatures", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_signatures_expires_at", table_name="webhook_signatures")
    op.drop_table("webhook_signatures")
    op.drop_index("ix_webhook_outbox_created_at", table_name="webhook_outbox")
    op.drop_index("ix_webhook_outbox_settled_next_attempt_at", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
