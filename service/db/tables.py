"""Engine tables: inbox, event log, outbox, job runs, schedules, pauses, API tokens.

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
    sa.Index("ix_processed_messages_processed_at", "processed_at"),  # for pruning
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
    #: A CloudEvent we emit (jsonb) or, for retry/dead-letter forwards, the exact bytes.
    sa.Column("payload", JSONB(none_as_null=True)),
    sa.Column("value", sa.LargeBinary),
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    _ts("created_at", nullable=False, server_default=NOW),
    _ts("published_at"),
    sa.CheckConstraint("(payload IS NULL) <> (value IS NULL)", name="one_body"),
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
    sa.Index("ix_outbox_published_at", "published_at"),
)

#: Every run of a job: one row per (job, scope, slot), whatever triggered it.
#: queued → running → succeeded | failed; skipped (overlap) and missed (clock down
#: longer than the catch-up window) are final. ``failed`` with ``next_attempt_at``
#: set means a retry is on its way through the retry tiers.
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "skipped", "missed")

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    _ts("slot", nullable=False),
    sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("actor", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    _ts("created_at", nullable=False, server_default=NOW),
    _ts("not_before", nullable=False, server_default=NOW),
    _ts("started_at"),
    _ts("finished_at"),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("affected", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("result", JSONB),
    sa.Column("correlation_id", sa.Text),
    #: host:pid of the process running it and the PostgreSQL backend holding its lock.
    sa.Column("worker", sa.Text),
    sa.Column("lock_pid", sa.Integer),
    _ts("timeout_at"),
    _ts("next_attempt_at"),
    _ts("overdue_at"),
    sa.UniqueConstraint("job", "scope", "slot", name="uq_job_runs_job_scope_slot"),
    sa.CheckConstraint(
        "status IN ('queued', 'running', 'succeeded', 'failed', 'skipped', 'missed')",
        name="status",
    ),
    sa.Index("ix_job_runs_job_slot", "job", "slot"),  # history and last run, newest first
    sa.Index(
        "ix_job_runs_queued", "not_before", "id", postgresql_where=sa.text("status = 'queued'")
    ),
    sa.Index("ix_job_runs_running", "id", postgresql_where=sa.text("status = 'running'")),
)

#: The clock's memory: the last slot emitted (or recorded missed) per schedule, and
#: the last slot whose deadline has been checked (so an overdue alert fires once).
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("job", sa.Text, primary_key=True),
    sa.Column("scope", sa.Text, primary_key=True, server_default=""),
    sa.Column("cron", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    _ts("last_slot", nullable=False),
    _ts("deadline_checked"),
    _ts("updated_at", nullable=False, server_default=NOW),
)

#: A paused job gets no ticks; its row says who paused it and why.
job_pauses = sa.Table(
    "job_pauses",
    metadata,
    sa.Column("job", sa.Text, primary_key=True),
    _ts("paused_at", nullable=False, server_default=NOW),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
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

# -- failure path: per-key parking behind a retried message, and the dead-letter index

parked_keys = sa.Table(
    "parked_keys",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    #: The message waiting in a retry tier that everything else with this key follows.
    sa.Column("head_id", sa.Text, nullable=False),
    _ts("parked_at", nullable=False, server_default=NOW),
)

parked_messages = sa.Table(
    "parked_messages",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("consumer", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("source_partition", sa.Integer, nullable=False),
    sa.Column("source_offset", sa.BigInteger, nullable=False),
    _ts("parked_at", nullable=False, server_default=NOW),
    sa.UniqueConstraint("consumer", "topic", "key", "message_id", name="uq_parked_messages_msg"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    #: ``x-forward-id``: one row per dead-lettering, however often the topic repeats it.
    sa.Column("forward_id", sa.Text, nullable=False, unique=True),
    sa.Column("dlq_topic", sa.Text, nullable=False),
    sa.Column("dlq_partition", sa.Integer, nullable=False),
    sa.Column("dlq_offset", sa.BigInteger, nullable=False),
    sa.Column("consumer_group", sa.Text),
    sa.Column("original_topic", sa.Text, nullable=False),
    sa.Column("original_partition", sa.Integer),
    sa.Column("original_offset", sa.BigInteger),
    _ts("original_timestamp"),
    sa.Column("message_key", sa.Text),
    sa.Column("message_id", sa.Text),
    sa.Column("event_type", sa.Text),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("error_class", sa.Text, nullable=False),
    sa.Column("error_type", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    _ts("first_failed_at"),
    _ts("last_failed_at"),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("replay_count", sa.Integer, nullable=False, server_default="0"),
    _ts("last_replayed_at"),
    sa.Column("last_replayed_by", sa.Text),
    sa.Column("replay_of", sa.BigInteger, sa.ForeignKey("dead_letters.id", ondelete="SET NULL")),
    _ts("created_at", nullable=False, server_default=NOW),
    sa.CheckConstraint("status IN ('pending', 'replayed', 'discarded')", name="status"),
    sa.Index("ix_dead_letters_created", "created_at"),
    sa.Index("ix_dead_letters_filter", "original_topic", "error_class", "status"),
)
