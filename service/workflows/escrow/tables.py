"""Escrow tables: accounts, escrows, matches, obligation cycles, boosts and the leaderboard.

Money columns are ``numeric(14, 2)``; balances may never go negative (checked), so a
release that would create or lose money fails instead of committing.
"""

from __future__ import annotations

import sqlalchemy as sa

from service.db.tables import NOW, metadata

MONEY = sa.Numeric(14, 2)


def _ts(name: str, **kw: object) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


escrow_accounts = sa.Table(
    "escrow_accounts",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("receivable", MONEY, nullable=False, server_default="0"),
    sa.Column("fiat", MONEY, nullable=False, server_default="0"),
    sa.Column("charity_coins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("trust_score", sa.Numeric(3, 2), nullable=False, server_default="1.00"),
    _ts("created_at", nullable=False, server_default=NOW),
    sa.CheckConstraint("receivable >= 0 AND fiat >= 0", name="balances"),
    sa.CheckConstraint("charity_coins >= 0", name="coins"),
    sa.CheckConstraint("trust_score BETWEEN 0 AND 1", name="trust_score"),
)

escrows = sa.Table(
    "escrows",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("donor_id", sa.Text, nullable=False),
    sa.Column("recipient_id", sa.Text, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("cycle_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    _ts("confirmed_at", nullable=False),
    _ts("release_at", nullable=False),
    _ts("released_at"),
    sa.CheckConstraint("amount > 0", name="amount"),
    sa.CheckConstraint("status IN ('held', 'released')", name="status"),
    sa.CheckConstraint("(released_at IS NOT NULL) = (status = 'released')", name="released"),
    sa.Index(
        "ix_escrows_held_release_at", "release_at", postgresql_where=sa.text("status = 'held'")
    ),
)

escrow_matches = sa.Table(
    "escrow_matches",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("donor_id", sa.Text, nullable=False),
    sa.Column("recipient_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("created_at", nullable=False),
    _ts("expires_at", nullable=False),
    _ts("updated_at", nullable=False),
    sa.CheckConstraint("status IN ('pending', 'accepted', 'expired')", name="status"),
    sa.Index(
        "ix_escrow_matches_pending_expires_at",
        "expires_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

escrow_cycles = sa.Table(
    "escrow_cycles",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("created_at", nullable=False),
    _ts("obligated_at"),
    _ts("fulfilled_at"),
    _ts("defaulted_at"),
    # Set once when the 7-day reminder goes out: the reason it never goes out twice.
    _ts("reminded_at"),
    sa.CheckConstraint("amount > 0", name="amount"),
    sa.CheckConstraint(
        "status IN ('pending', 'obligated', 'fulfilled', 'defaulted')", name="status"
    ),
    sa.Index(
        "ix_escrow_cycles_obligated_due_date",
        "due_date",
        postgresql_where=sa.text("status = 'obligated'"),
    ),
    sa.Index("ix_escrow_cycles_user_id", "user_id"),
)

escrow_boosts = sa.Table(
    "escrow_boosts",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("multiplier", sa.Numeric(4, 2), nullable=False),
    _ts("granted_at", nullable=False),
    _ts("expires_at", nullable=False),
    _ts("expired_at"),
    sa.CheckConstraint("multiplier BETWEEN 1 AND 10", name="multiplier"),
    sa.Index(
        "ix_escrow_boosts_unexpired",
        "expires_at",
        postgresql_where=sa.text("expired_at IS NULL"),
    ),
)

escrow_leaderboard = sa.Table(
    "escrow_leaderboard",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("score", sa.Numeric(12, 2), nullable=False),
    sa.Column("completed_cycles", sa.Integer, nullable=False),
    sa.Column("average_completion_days", sa.Numeric(10, 2)),
    sa.Column("multiplier", sa.Numeric(4, 2), nullable=False),
    _ts("updated_at", nullable=False),
    sa.Index("ix_escrow_leaderboard_rank", "rank"),
)
