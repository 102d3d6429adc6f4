"""cancellations that overtake the call they cancel

A handshake-era `notifications/cancelled` can reach Airlock before the `tools/call` it cancels has
been parked (the client timed out while the call was still being judged). `cancelled_requests`
remembers it for a while, so the call is withdrawn as soon as it is parked instead of waiting for
a reviewer whose yes would run a call its agent gave up on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cancelled_requests",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("cancelled_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "request_id"),
    )
    op.create_index("ix_cancelled_requests_cancelled_at", "cancelled_requests", ["cancelled_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cancelled_requests_cancelled_at", table_name="cancelled_requests")
    op.drop_table("cancelled_requests")
