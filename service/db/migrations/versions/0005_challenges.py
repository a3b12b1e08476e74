"""Challenges workflow: users, challenges, members, notifications, the stats view.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Frozen here (not imported) so that later edits of the job's query do not rewrite
# history; a new revision replaces the view when its definition must change.
STATS_VIEW = """
CREATE MATERIALIZED VIEW challenge_stats AS
SELECT c.id AS challenge_id, c.status,
       count(m.user_id)::int AS members,
       (count(m.user_id) FILTER (WHERE m.completion_rate >= 1))::int AS members_finished,
       coalesce(round(avg(m.completion_rate), 4), 0)::numeric(5, 4) AS average_completion_rate,
       coalesce(min(m.completion_rate), 0)::numeric(5, 4) AS min_completion_rate,
       coalesce(max(m.completion_rate), 0)::numeric(5, 4) AS max_completion_rate
FROM challenges c
LEFT JOIN challenge_members m ON m.challenge_id = c.id
GROUP BY c.id, c.status
"""

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "challenge_members",
        sa.Column("challenge_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "completion_rate", sa.Numeric(precision=5, scale=4), server_default="0", nullable=False
        ),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "completion_rate BETWEEN 0 AND 1", name=op.f("ck_challenge_members_completion_rate")
        ),
        sa.PrimaryKeyConstraint("challenge_id", "user_id", name=op.f("pk_challenge_members")),
    )
    op.create_index("ix_challenge_members_user_id", "challenge_members", ["user_id"], unique=False)
    op.create_table(
        "challenge_users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("streak_reminded_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_challenge_users")),
    )
    op.create_index("ix_challenge_users_timezone", "challenge_users", ["timezone"], unique=False)
    op.create_table(
        "challenges",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("average_completion_rate", sa.Numeric(precision=5, scale=4), nullable=True),
        sa.CheckConstraint(
            "(closed_at IS NULL) = (status = 'active')", name=op.f("ck_challenges_closed")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'failed')", name=op.f("ck_challenges_status")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_challenges_period")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_challenges")),
    )
    op.create_index(
        "ix_challenges_active_ends_at",
        "challenges",
        ["ends_at"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "user_notifications",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_notifications")),
    )
    op.create_index(
        "ix_user_notifications_created_at", "user_notifications", ["created_at"], unique=False
    )
    op.execute(STATS_VIEW)
    # REFRESH ... CONCURRENTLY needs a unique index over all rows.
    op.execute(
        "CREATE UNIQUE INDEX ux_challenge_stats_challenge_id ON challenge_stats (challenge_id)"
    )


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW challenge_stats")
    op.drop_index("ix_user_notifications_created_at", table_name="user_notifications")
    op.drop_table("user_notifications")
    op.drop_index(
        "ix_challenges_active_ends_at",
        table_name="challenges",
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_table("challenges")
    op.drop_index("ix_challenge_users_timezone", table_name="challenge_users")
    op.drop_table("challenge_users")
    op.drop_index("ix_challenge_members_user_id", table_name="challenge_members")
    op.drop_table("challenge_members")
