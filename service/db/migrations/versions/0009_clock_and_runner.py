"""The clock and the job runner: scoped job runs, schedules, pauses.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_constraint("uq_job_runs_job_slot", "job_runs", type_="unique")
    op.add_column("job_runs", sa.Column("scope", sa.Text(), server_default="", nullable=False))
    op.add_column(
        "job_runs", sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False)
    )
    op.add_column(
        "job_runs", sa.Column("not_before", _TS, server_default=sa.text("now()"), nullable=False)
    )
    op.add_column(
        "job_runs", sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("job_runs", sa.Column("correlation_id", sa.Text(), nullable=True))
    op.add_column("job_runs", sa.Column("worker", sa.Text(), nullable=True))
    op.add_column("job_runs", sa.Column("lock_pid", sa.Integer(), nullable=True))
    op.add_column("job_runs", sa.Column("timeout_at", _TS, nullable=True))
    op.add_column("job_runs", sa.Column("next_attempt_at", _TS, nullable=True))
    op.add_column("job_runs", sa.Column("overdue_at", _TS, nullable=True))
    op.create_unique_constraint("uq_job_runs_job_scope_slot", "job_runs", ["job", "scope", "slot"])
    op.create_check_constraint(
        op.f("ck_job_runs_status"),
        "job_runs",
        "status IN ('queued', 'running', 'succeeded', 'failed', 'skipped', 'missed')",
    )
    op.drop_index("ix_job_runs_job_created", table_name="job_runs")
    op.create_index("ix_job_runs_job_slot", "job_runs", ["job", "slot"], unique=False)
    op.create_index(
        "ix_job_runs_queued",
        "job_runs",
        ["not_before", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_job_runs_running",
        "job_runs",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "ix_processed_messages_processed_at", "processed_messages", ["processed_at"], unique=False
    )
    op.create_table(
        "schedules",
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), server_default="", nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("last_slot", _TS, nullable=False),
        sa.Column("deadline_checked", _TS, nullable=True),
        sa.Column("updated_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("job", "scope", name=op.f("pk_schedules")),
    )
    op.create_table(
        "job_pauses",
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("paused_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_pauses")),
    )


def downgrade() -> None:
    op.drop_table("job_pauses")
    op.drop_table("schedules")
    op.drop_index("ix_processed_messages_processed_at", table_name="processed_messages")
    op.drop_index(
        "ix_job_runs_running", table_name="job_runs", postgresql_where=sa.text("status = 'running'")
    )
    op.drop_index(
        "ix_job_runs_queued", table_name="job_runs", postgresql_where=sa.text("status = 'queued'")
    )
    op.drop_index("ix_job_runs_job_slot", table_name="job_runs")
    op.create_index("ix_job_runs_job_created", "job_runs", ["job", "created_at"], unique=False)
    op.drop_constraint(op.f("ck_job_runs_status"), "job_runs", type_="check")
    op.drop_constraint("uq_job_runs_job_scope_slot", "job_runs", type_="unique")
    # Collapsing scopes back into one row per (job, slot) would lose runs: keep the
    # unscoped ones only.
    op.execute("DELETE FROM job_runs WHERE scope <> ''")
    for column in (
        "overdue_at",
        "next_attempt_at",
        "timeout_at",
        "lock_pid",
        "worker",
        "correlation_id",
        "result",
        "not_before",
        "timezone",
        "scope",
    ):
        op.drop_column("job_runs", column)
    op.create_unique_constraint("uq_job_runs_job_slot", "job_runs", ["job", "slot"])
