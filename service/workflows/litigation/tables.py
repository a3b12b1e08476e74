"""Litigation tables. Every row belongs to a tenant; keys and foreign keys include it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import SchemaItem

from service.db.tables import NOW, metadata


def _ts(name: str, **kw: object) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


def _tenant_key() -> list[SchemaItem]:
    return [
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("litigation_tenants.id"), primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
    ]


def _of_case(table: str) -> list[SchemaItem]:
    return [
        sa.Column("case_id", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["litigation_cases.tenant_id", "litigation_cases.id"],
            name=f"fk_{table}_case",
        ),
    ]


tenants = sa.Table(
    "litigation_tenants",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    _ts("updated_at", nullable=False, server_default=NOW),
)

cases = sa.Table(
    "litigation_cases",
    metadata,
    *_tenant_key(),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("opened_at", nullable=False),
    _ts("closed_at"),
    sa.CheckConstraint("status IN ('open', 'closed')", name="status"),
)

tasks = sa.Table(
    "litigation_tasks",
    metadata,
    *_tenant_key(),
    *_of_case("litigation_tasks"),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("assignee_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("created_at", nullable=False),
    _ts("due_at", nullable=False),
    sa.Column("sla_hours", sa.Integer, nullable=False),
    _ts("completed_at"),
    _ts("sla_breached_at"),
    _ts("overdue_at"),
    sa.CheckConstraint("status IN ('open', 'completed')", name="status"),
    sa.CheckConstraint("sla_hours > 0", name="sla_hours"),
    sa.Index(
        "ix_litigation_tasks_open",
        "tenant_id",
        "due_at",
        postgresql_where=sa.text("status = 'open'"),
    ),
    sa.Index("ix_litigation_tasks_completed", "tenant_id", "completed_at"),
)

hearings = sa.Table(
    "litigation_hearings",
    metadata,
    *_tenant_key(),
    *_of_case("litigation_hearings"),
    _ts("starts_at", nullable=False),
    sa.Column("location", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    _ts("reminded_at"),
    sa.CheckConstraint("status IN ('scheduled', 'cancelled')", name="status"),
    sa.Index(
        "ix_litigation_hearings_unreminded",
        "tenant_id",
        "starts_at",
        postgresql_where=sa.text("status = 'scheduled' AND reminded_at IS NULL"),
    ),
)

deadlines = sa.Table(
    "litigation_deadlines",
    metadata,
    *_tenant_key(),
    *_of_case("litigation_deadlines"),
    sa.Column("title", sa.Text, nullable=False),
    _ts("due_at", nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("alerted_at"),
    _ts("met_at"),
    sa.CheckConstraint("status IN ('open', 'met')", name="status"),
    sa.Index(
        "ix_litigation_deadlines_unalerted",
        "tenant_id",
        "due_at",
        postgresql_where=sa.text("status = 'open' AND alerted_at IS NULL"),
    ),
)

#: One row per tenant and local day: the key is what makes the snapshot idempotent.
snapshots = sa.Table(
    "litigation_snapshots",
    metadata,
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("litigation_tenants.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    _ts("taken_at", nullable=False),
    sa.Column("open_tasks", sa.Integer, nullable=False),
    sa.Column("overdue_tasks", sa.Integer, nullable=False),
    sa.Column("closed_tasks", sa.Integer, nullable=False),
    sa.Column("sla_met", sa.Integer, nullable=False),
    sa.Column("sla_breached", sa.Integer, nullable=False),
    sa.Column("sla_compliance_pct", sa.Numeric(5, 2)),
)

#: Failed or missed job runs already reported by the health check (each reported once).
health_flags = sa.Table(
    "litigation_health_flags",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    _ts("slot", nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _ts("flagged_at", nullable=False),
)
