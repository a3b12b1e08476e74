"""Escrow workflow: accounts, escrows, matches, cycles, boosts, leaderboard.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escrow_accounts",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column(
            "receivable", sa.Numeric(precision=14, scale=2), server_default="0", nullable=False
        ),
        sa.Column("fiat", sa.Numeric(precision=14, scale=2), server_default="0", nullable=False),
        sa.Column("charity_coins", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "trust_score", sa.Numeric(precision=3, scale=2), server_default="1.00", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("charity_coins >= 0", name=op.f("ck_escrow_accounts_coins")),
        sa.CheckConstraint(
            "receivable >= 0 AND fiat >= 0", name=op.f("ck_escrow_accounts_balances")
        ),
        sa.CheckConstraint(
            "trust_score BETWEEN 0 AND 1", name=op.f("ck_escrow_accounts_trust_score")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_escrow_accounts")),
    )
    op.create_table(
        "escrow_boosts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=4, scale=2), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("multiplier BETWEEN 1 AND 10", name=op.f("ck_escrow_boosts_multiplier")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_boosts")),
    )
    op.create_index(
        "ix_escrow_boosts_unexpired",
        "escrow_boosts",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("expired_at IS NULL"),
    )
    op.create_table(
        "escrow_cycles",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("obligated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("defaulted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'obligated', 'fulfilled', 'defaulted')",
            name=op.f("ck_escrow_cycles_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_escrow_cycles_amount")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_cycles")),
    )
    op.create_index(
        "ix_escrow_cycles_obligated_due_date",
        "escrow_cycles",
        ["due_date"],
        unique=False,
        postgresql_where=sa.text("status = 'obligated'"),
    )
    op.create_index("ix_escrow_cycles_user_id", "escrow_cycles", ["user_id"], unique=False)
    op.create_table(
        "escrow_leaderboard",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("completed_cycles", sa.Integer(), nullable=False),
        sa.Column("average_completion_days", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("multiplier", sa.Numeric(precision=4, scale=2), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_escrow_leaderboard")),
    )
    op.create_index("ix_escrow_leaderboard_rank", "escrow_leaderboard", ["rank"], unique=False)
    op.create_table(
        "escrow_matches",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("donor_id", sa.Text(), nullable=False),
        sa.Column("recipient_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'expired')", name=op.f("ck_escrow_matches_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_matches")),
    )
    op.create_index(
        "ix_escrow_matches_pending_expires_at",
        "escrow_matches",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "escrows",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("donor_id", sa.Text(), nullable=False),
        sa.Column("recipient_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("cycle_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(released_at IS NOT NULL) = (status = 'released')", name=op.f("ck_escrows_released")
        ),
        sa.CheckConstraint("status IN ('held', 'released')", name=op.f("ck_escrows_status")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_escrows_amount")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrows")),
    )
    op.create_index(
        "ix_escrows_held_release_at",
        "escrows",
        ["release_at"],
        unique=False,
        postgresql_where=sa.text("status = 'held'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_escrows_held_release_at",
        table_name="escrows",
        postgresql_where=sa.text("status = 'held'"),
    )
    op.drop_table("escrows")
    op.drop_index(
        "ix_escrow_matches_pending_expires_at",
        table_name="escrow_matches",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("escrow_matches")
    op.drop_index("ix_escrow_leaderboard_rank", table_name="escrow_leaderboard")
    op.drop_table("escrow_leaderboard")
    op.drop_index("ix_escrow_cycles_user_id", table_name="escrow_cycles")
    op.drop_index(
        "ix_escrow_cycles_obligated_due_date",
        table_name="escrow_cycles",
        postgresql_where=sa.text("status = 'obligated'"),
    )
    op.drop_table("escrow_cycles")
    op.drop_index(
        "ix_escrow_boosts_unexpired",
        table_name="escrow_boosts",
        postgresql_where=sa.text("expired_at IS NULL"),
    )
    op.drop_table("escrow_boosts")
    op.drop_table("escrow_accounts")
