"""session idle expiry and the purge of old streams and sessions

`sessions.last_used_at` says when a session last served a request: the janitor closes sessions
idle past `[sessions] idle_seconds` and the least recently used one when an agent opens more than
`[sessions] max_per_agent` (see `app/sessions.py`). Existing sessions start from their creation
time. The indexes serve the per-agent count, the idle scan and the purges of closed sessions and
of streams whose hold ended long ago.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))
    op.execute("UPDATE sessions SET last_used_at = created_at")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.alter_column("last_used_at", existing_type=sa.Float(), nullable=False)
        batch_op.create_index("ix_sessions_agent_closed_at", ["agent", "closed_at"], unique=False)
        batch_op.create_index("ix_sessions_closed_at_last_used_at", ["closed_at", "last_used_at"], unique=False)
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.create_index("ix_streams_hold_until", ["hold_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_index("ix_streams_hold_until")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_closed_at_last_used_at")
        batch_op.drop_index("ix_sessions_agent_closed_at")
        batch_op.drop_column("last_used_at")
