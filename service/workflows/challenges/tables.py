"""Challenges tables: users with their timezone, challenges, members, in-app notifications.

``challenge_stats`` is a materialized view created by the migration (refreshed
concurrently, so it needs its unique index); :data:`challenge_stats` here only names
its columns for queries and is not part of the metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

from service.db.tables import metadata

RATE = sa.Numeric(5, 4)


def _ts(name: str, **kw: object) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


challenge_users = sa.Table(
    "challenge_users",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    _ts("updated_at", nullable=False),
    # The local date of the last streak reminder: the reason there is one per day.
    sa.Column("streak_reminded_on", sa.Date),
    sa.Index("ix_challenge_users_timezone", "timezone"),
)

challenges = sa.Table(
    "challenges",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("starts_at", nullable=False),
    _ts("ends_at", nullable=False),
    _ts("created_at", nullable=False),
    _ts("closed_at"),
    sa.Column("member_count", sa.Integer),
    sa.Column("average_completion_rate", RATE),
    sa.CheckConstraint("status IN ('active', 'completed', 'failed')", name="status"),
    sa.CheckConstraint("ends_at > starts_at", name="period"),
    sa.CheckConstraint("(closed_at IS NULL) = (status = 'active')", name="closed"),
    sa.Index(
        "ix_challenges_active_ends_at", "ends_at", postgresql_where=sa.text("status = 'active'")
    ),
)

challenge_members = sa.Table(
    "challenge_members",
    metadata,
    sa.Column("challenge_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    _ts("joined_at", nullable=False),
    sa.Column("completion_rate", RATE, nullable=False, server_default="0"),
    _ts("progress_at"),
    sa.CheckConstraint("completion_rate BETWEEN 0 AND 1", name="completion_rate"),
    sa.Index("ix_challenge_members_user_id", "user_id"),
)

user_notifications = sa.Table(
    "user_notifications",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    _ts("created_at", nullable=False),
    sa.Index("ix_user_notifications_created_at", "created_at"),
)

challenge_stats = sa.table(
    "challenge_stats",
    sa.column("challenge_id"),
    sa.column("status"),
    sa.column("members"),
    sa.column("members_finished"),
    sa.column("average_completion_rate"),
    sa.column("min_completion_rate"),
    sa.column("max_completion_rate"),
)
