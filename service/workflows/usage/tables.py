"""Usage tables: limits, per-period counters and their archive, flags, API keys, audit log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import SchemaItem

from service.db.tables import NOW, metadata


def _ts(name: str, **kw: object) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


def _org_key(name: str) -> list[sa.Column[object]]:
    return [
        sa.Column("organization_id", sa.Text, primary_key=True),
        sa.Column(name, sa.Text, primary_key=True),
    ]


limits = sa.Table(
    "usage_limits",
    metadata,
    *_org_key("metric"),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("limit_value", sa.BigInteger, nullable=False),
    sa.Column("warning_pct", sa.Integer, nullable=False),
    sa.Column("contact", sa.Text, nullable=False),
    sa.Column("actions", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    _ts("updated_at", nullable=False),
    sa.CheckConstraint("period IN ('hourly', 'daily', 'monthly')", name="period"),
    sa.CheckConstraint("limit_value > 0 AND warning_pct BETWEEN 1 AND 100", name="thresholds"),
)


def _counter_columns() -> list[SchemaItem]:
    return [
        sa.Column("organization_id", sa.Text, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        _ts("period_start", primary_key=True),
        sa.Column("period", sa.Text, nullable=False),
        _ts("period_end", nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        #: Time of the latest event counted (event time, not arrival).
        _ts("updated_at", nullable=False),
        #: When the warning and the limit fired for this period; NULL = armed.
        _ts("warned_at"),
        _ts("limited_at"),
    ]


#: The open periods: one row per organization, metric and period, updated atomically.
counters = sa.Table(
    "usage_counters",
    metadata,
    *_counter_columns(),
    sa.Index("ix_usage_counters_period_end", "period_end"),
)

#: Closed periods, moved here by the rollover job.
counters_archive = sa.Table(
    "usage_counters_archive",
    metadata,
    *_counter_columns(),
    _ts("archived_at", nullable=False),
)

feature_flags = sa.Table(
    "usage_feature_flags",
    metadata,
    *_org_key("flag"),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    _ts("updated_at", nullable=False),
)

api_keys = sa.Table(
    "usage_api_keys",
    metadata,
    *_org_key("key_id"),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    _ts("updated_at", nullable=False),
)

#: Append-only audit log: upstream audit events and jobstream's own auto-actions.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _ts("occurred_at", nullable=False),
    sa.Column("organization_id", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target_type", sa.Text, nullable=False),
    sa.Column("target_id", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("source", sa.Text, nullable=False),
    _ts("recorded_at", nullable=False, server_default=NOW),
    sa.Index("ix_audit_log_organization", "organization_id", "occurred_at"),
)
