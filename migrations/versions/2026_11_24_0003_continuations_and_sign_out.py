"""approval continuations, durable withdrawals and reviewer sign-out

A 2026-07-28 call that needs input (`resultType: "input_required"`) finishes its approved round
without running the tool body; the client repeats it with the answers. `continues` links that
repeat to the approval it continues, and its unique index lets each approved round be continued
once (see `app/approvals/continuation.py`).

`approvals.withdraw_at` / `withdraw_seq` make a 2026-07-28 client's cancellation durable: when
its stream closes, the withdrawal is due at `withdraw_at` unless the approval was attached again
since `withdraw_seq`, and any process's sweeper carries it out (see `app/gateway/holding.py`).

`reviewers.signed_out_at` ends every inbox session a reviewer signed in before it: sign-out
revokes the signed cookie, including copies of it (see `app/inbox/session.py`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("continues", sa.String(length=40), nullable=True))
        batch_op.create_index("uq_approvals_continues", ["continues"], unique=True)
        batch_op.add_column(sa.Column("withdraw_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("withdraw_seq", sa.Integer(), nullable=True))
        batch_op.create_index("ix_approvals_status_withdraw_at", ["status", "withdraw_at"], unique=False)
    with op.batch_alter_table("reviewers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_out_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviewers", schema=None) as batch_op:
        batch_op.drop_column("signed_out_at")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_approvals_status_withdraw_at")
        batch_op.drop_column("withdraw_seq")
        batch_op.drop_column("withdraw_at")
        batch_op.drop_index("uq_approvals_continues")
        batch_op.drop_column("continues")
