"""Litigation: tenants, cases, tasks with SLAs, hearings, deadlines, snapshots.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "litigation_tenants",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_litigation_tenants")),
    )
    op.create_table(
        "litigation_cases",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_litigation_cases_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["litigation_tenants.id"],
            name=op.f("fk_litigation_cases_tenant_id_litigation_tenants"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_litigation_cases")),
    )
    op.create_table(
        "litigation_tasks",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("assignee_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_hours", sa.Integer(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'completed')", name=op.f("ck_litigation_tasks_status")
        ),
        sa.CheckConstraint("sla_hours > 0", name=op.f("ck_litigation_tasks_sla_hours")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["litigation_cases.tenant_id", "litigation_cases.id"],
            name="fk_litigation_tasks_case",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["litigation_tenants.id"],
            name=op.f("fk_litigation_tasks_tenant_id_litigation_tenants"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_litigation_tasks")),
    )
    op.create_index(
        "ix_litigation_tasks_completed",
        "litigation_tasks",
        ["tenant_id", "completed_at"],
        unique=False,
    )
    op.create_index(
        "ix_litigation_tasks_open",
        "litigation_tasks",
        ["tenant_id", "due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "litigation_hearings",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('scheduled', 'cancelled')", name=op.f("ck_litigation_hearings_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["litigation_cases.tenant_id", "litigation_cases.id"],
            name="fk_litigation_hearings_case",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["litigation_tenants.id"],
            name=op.f("fk_litigation_hearings_tenant_id_litigation_tenants"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_litigation_hearings")),
    )
    op.create_index(
        "ix_litigation_hearings_unreminded",
        "litigation_hearings",
        ["tenant_id", "starts_at"],
        unique=False,
        postgresql_where=sa.text("status = 'scheduled' AND reminded_at IS NULL"),
    )
    op.create_table(
        "litigation_deadlines",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("met_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'met')", name=op.f("ck_litigation_deadlines_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["litigation_cases.tenant_id", "litigation_cases.id"],
            name="fk_litigation_deadlines_case",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["litigation_tenants.id"],
            name=op.f("fk_litigation_deadlines_tenant_id_litigation_tenants"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_litigation_deadlines")),
    )
    op.create_index(
        "ix_litigation_deadlines_unalerted",
        "litigation_deadlines",
        ["tenant_id", "due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'open' AND alerted_at IS NULL"),
    )
    op.create_table(
        "litigation_snapshots",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open_tasks", sa.Integer(), nullable=False),
        sa.Column("overdue_tasks", sa.Integer(), nullable=False),
        sa.Column("closed_tasks", sa.Integer(), nullable=False),
        sa.Column("sla_met", sa.Integer(), nullable=False),
        sa.Column("sla_breached", sa.Integer(), nullable=False),
        sa.Column("sla_compliance_pct", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["litigation_tenants.id"],
            name=op.f("fk_litigation_snapshots_tenant_id_litigation_tenants"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_litigation_snapshots")),
    )
    op.create_table(
        "litigation_health_flags",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_litigation_health_flags")),
    )


def downgrade() -> None:
    op.drop_table("litigation_health_flags")
    op.drop_table("litigation_snapshots")
    op.drop_index("ix_litigation_deadlines_unalerted", table_name="litigation_deadlines")
    op.drop_table("litigation_deadlines")
    op.drop_index("ix_litigation_hearings_unreminded", table_name="litigation_hearings")
    op.drop_table("litigation_hearings")
    op.drop_index("ix_litigation_tasks_completed", table_name="litigation_tasks")
    op.drop_index("ix_litigation_tasks_open", table_name="litigation_tasks")
    op.drop_table("litigation_tasks")
    op.drop_table("litigation_cases")
    op.drop_table("litigation_tenants")
