"""Notifier: deliveries, one row per delivered notification id.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifier_deliveries",
        sa.Column("notification_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("sink", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column(
            "delivered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_notifier_deliveries")),
    )
    op.create_index(
        "ix_notifier_deliveries_delivered_at", "notifier_deliveries", ["delivered_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_deliveries_delivered_at", table_name="notifier_deliveries")
    op.drop_table("notifier_deliveries")
