"""Engine tables: inbox, event log, outbox, job runs, API tokens.

SQLAlchemy Core, not ORM: jobs and batch handlers are set-based statements, and a
table object is all they need. Workflow tables register on the same ``metadata``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NOW = sa.text("now()")


def _ts(name: str, **kw: object) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


processed_messages = sa.Table(
    "processed_messages",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("message_id", sa.Text, primary_key=True),
    _ts("processed_at", nullable=False, server_default=NOW),
)

event_log = sa.Table(
    "event_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "event_id", UUID(as_uuid=False), nullable=False, server_default=sa.text("gen_random_uuid()")
    ),
    _ts("occurred_at", nullable=False),
    _ts("recorded_at", nullable=False, server_default=NOW),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("entity_type", sa.Text, nullable=False),
    sa.Column("entity_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("correlation_id", sa.Text),
    sa.Column("causation_id", sa.Text),
    sa.Index("ix_event_log_entity", "entity_type", "entity_id"),
    sa.Index("ix_event_log_event_type", "event_type", "occurred_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    _ts("created_at", nullable=False, server_default=NOW),
    _ts("published_at"),
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
    sa.Index("ix_outbox_published_at", "published_at"),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    _ts("slot", nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("actor", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    _ts("created_at", nullable=False, server_default=NOW),
    _ts("started_at"),
    _ts("finished_at"),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("affected", sa.Integer),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("job", "slot", name="uq_job_runs_job_slot"),
    sa.Index("ix_job_runs_job_created", "job", "created_at"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    _ts("created_at", nullable=False, server_default=NOW),
    _ts("revoked_at"),
    sa.CheckConstraint("role IN ('admin', 'viewer')", name="role"),
)
