"""Dead letters: the index of the dead-letter topics, and what operators do with it.

The DLQ topics are the record; ``dead_letters`` indexes them (one row per
dead-lettering, keyed by the forward id the worker stamped, so a republished copy
is not indexed twice). Replay sends the untouched bytes back into the handler's
first retry tier through the outbox, in the transaction that marks the row
replayed and writes the event log; the handler's inbox makes a double replay
harmless, and a replay that fails again becomes a new dead letter linked to this
one (``replay_of``), never a loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.db.tables import dead_letters, event_log
from service.engine import metrics, topics
from service.engine.failures import Incoming
from service.engine.uow import UnitOfWork
from service.engine.workflow import Job, JobContext, JobResult

STATUSES = ("pending", "replayed", "discarded")
#: Headers describing one failure; a replay starts a fresh history (x-original-* stay).
FAILURE_HEADERS = (
    "x-attempt",
    "x-error-type",
    "x-error-message",
    "x-error-trace",
    "x-error-class",
    "x-last-failed-at",
    "x-due-at",
    "x-forward-id",
    "x-entity",
    "x-entity-id",
    "x-state",
)


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _peek(value: bytes) -> tuple[str | None, str | None]:
    """The CloudEvent id and type, if the bytes are a JSON object that has them."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    return (
        str(doc["id"])[:200] if "id" in doc else None,
        str(doc["type"])[:200] if "type" in doc else None,
    )


async def index(engine: AsyncEngine, record: Incoming) -> bool:
    """Index one DLQ record; False if it was indexed before."""
    h = record.header
    message_id, event_type = _peek(record.value)
    original_ts = _int(h("x-original-timestamp"))
    replay_of = _int(h("x-replay-of"))
    values: dict[str, Any] = {
        "forward_id": h("x-forward-id") or f"{record.topic}/{record.partition}/{record.offset}",
        "dlq_topic": record.topic,
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
        "consumer_group": h("x-consumer-group"),
        "original_topic": record.origin_topic,
        "original_partition": _int(h("x-original-partition")),
        "original_offset": _int(h("x-original-offset")),
        "original_timestamp": datetime.fromtimestamp(original_ts / 1000, UTC)
        if original_ts
        else None,
        "message_key": record.key_text,
        "message_id": message_id,
        "event_type": event_type,
        "payload": record.value,
        "headers": {k: v.decode(errors="replace") for k, v in record.headers.items()},
        "error_class": h("x-error-class") or "unknown",
        "error_type": h("x-error-type"),
        "error_message": h("x-error-message"),
        "attempts": _int(h("x-attempt")) or 1,
        "first_failed_at": _ts(h("x-first-failed-at")),
        "last_failed_at": _ts(h("x-last-failed-at")),
        # a link to a row that is gone (purged) is dropped rather than refused
        "replay_of": sa.select(dead_letters.c.id)
        .where(dead_letters.c.id == replay_of)
        .scalar_subquery()
        if replay_of
        else None,
    }
    async with engine.begin() as conn:
        result = await conn.execute(
            pg_insert(dead_letters)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(dead_letters.c.id)
        )
        return result.first() is not None


@dataclass(frozen=True)
class Filter:
    """Which dead letters an operation applies to; empty fields match everything."""

    ids: tuple[int, ...] = ()
    topic: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    status: str | None = "pending"
    limit: int = 1000
    offset: int = 0

    def where(self, settings: Settings) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        if self.ids:
            clauses.append(dead_letters.c.id.in_(self.ids))
        if self.topic:
            clauses.append(
                dead_letters.c.original_topic.in_({self.topic, settings.topic(self.topic)})
            )
        if self.error_class:
            clauses.append(dead_letters.c.error_class == self.error_class)
        if self.since:
            clauses.append(dead_letters.c.created_at >= self.since)
        if self.status:
            clauses.append(dead_letters.c.status == self.status)
        return clauses


SUMMARY = (
    dead_letters.c.id,
    dead_letters.c.created_at,
    dead_letters.c.original_topic,
    dead_letters.c.event_type,
    dead_letters.c.message_key,
    dead_letters.c.error_class,
    dead_letters.c.error_type,
    dead_letters.c.error_message,
    dead_letters.c.attempts,
    dead_letters.c.status,
    dead_letters.c.replay_count,
    dead_letters.c.replay_of,
)


async def find(
    conn: AsyncConnection, settings: Settings, flt: Filter
) -> tuple[int, list[dict[str, Any]]]:
    """Count and list (newest first) the dead letters matching ``flt``."""
    where = flt.where(settings)
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(*where))
    ).scalar_one()
    rows = await conn.execute(
        sa.select(*SUMMARY)
        .where(*where)
        .order_by(dead_letters.c.id.desc())
        .limit(flt.limit)
        .offset(flt.offset)
    )
    return int(total), [dict(r._mapping) for r in rows]


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """Pending dead letters per error class."""
    rows = await conn.execute(
        sa.select(dead_letters.c.error_class, sa.func.count())
        .where(dead_letters.c.status == "pending")
        .group_by(dead_letters.c.error_class)
    )
    return {r[0]: int(r[1]) for r in rows}


async def get(conn: AsyncConnection, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter with its headers, decoded payload and error details."""
    row = (
        await conn.execute(sa.select(dead_letters).where(dead_letters.c.id == dead_letter_id))
    ).first()
    if row is None:
        return None
    item = dict(row._mapping)
    raw: bytes = bytes(item.pop("payload"))
    try:
        item["payload"] = json.loads(raw)
    except ValueError:
        item["payload"] = None
    item["payload_text"] = raw.decode(errors="replace")
    try:
        item["validation_errors"] = (
            json.loads(item["error_message"] or "")
            if item["error_class"] == "non_retryable"
            else None
        )
    except ValueError:
        item["validation_errors"] = None
    item["traceback"] = item["headers"].get("x-error-trace")
    return item


def _log(uow: UnitOfWork, action: str, entity_id: str, actor: str, meta: dict[str, Any]) -> None:
    uow.record(
        entity_type="dead_letter",
        entity_id=entity_id,
        event_type=f"dead_letter.{action}",
        occurred_at=datetime.now(UTC),
        metadata=meta,
        actor=actor,
    )


async def replay_one(
    engine: AsyncEngine, settings: Settings, dead_letter_id: int, actor: str
) -> dict[str, Any] | None:
    """Send one dead letter back to its handler (first retry tier, attempts reset)."""
    async with UnitOfWork(engine, settings.topic_prefix) as uow:
        row = (
            await uow.conn.execute(
                sa.select(dead_letters).where(dead_letters.c.id == dead_letter_id).with_for_update()
            )
        ).first()
        if row is None or row.status == "discarded":
            return None
        source = topics.unprefixed(settings, row.original_topic)
        target = topics.retry(settings, source, 1)
        kept = {k: v for k, v in row.headers.items() if k not in FAILURE_HEADERS}
        replay_id = str(uuid.uuid4())
        headers = {
            **kept,
            "x-original-topic": row.original_topic,
            "x-attempt": "0",
            "x-due-at": f"{time.time():.6f}",
            "x-replay-of": str(row.id),
            "x-replayed-by": actor,
            "x-replay-id": replay_id,
        }
        uow.forward(target, bytes(row.payload), row.message_key, headers, replay_id)
        await uow.conn.execute(
            dead_letters.update()
            .where(dead_letters.c.id == row.id)
            .values(
                status="replayed",
                replay_count=dead_letters.c.replay_count + 1,
                last_replayed_at=sa.func.now(),
                last_replayed_by=actor,
            )
        )
        meta = {
            "topic": row.original_topic,
            "error_class": row.error_class,
            "to": target,
            "replay_count": row.replay_count + 1,
            "replay_id": replay_id,
        }
        _log(uow, "replayed", str(row.id), actor, meta)
        await uow.commit()
    metrics.REPLAYS.labels(source).inc()
    return {"id": row.id, "topic": row.original_topic, "to": target, "replay_id": replay_id}


async def replay_many(
    engine: AsyncEngine,
    settings: Settings,
    ids: list[int],
    actor: str,
    *,
    rate: float | None = None,
    progress: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Replay ``ids`` in order, at most ``rate`` per second; returns those replayed."""
    interval = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    done = []
    for dead_letter_id in ids:
        if interval:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic()) + interval
        result = await replay_one(engine, settings, dead_letter_id, actor)
        if result is not None:
            done.append(result)
        if progress is not None:
            progress()
    return done


async def discard(engine: AsyncEngine, ids: list[int], actor: str) -> list[int]:
    """Mark dead letters discarded (kept for the record, never replayed); returns those changed."""
    async with UnitOfWork(engine) as uow:
        result = await uow.conn.execute(
            dead_letters.update()
            .where(dead_letters.c.id.in_(ids), dead_letters.c.status != "discarded")
            .values(status="discarded")
            .returning(dead_letters.c.id, dead_letters.c.original_topic)
        )
        changed = []
        for row in result:
            changed.append(row.id)
            _log(uow, "discarded", str(row.id), actor, {"topic": row.original_topic})
        await uow.commit()
    return sorted(changed)


async def purge(
    conn: AsyncConnection, older_than: timedelta, actor: str, now: datetime, dry_run: bool = False
) -> int:
    """Delete dead letters indexed before ``now - older_than``; log who did it and how many."""
    cutoff = now - older_than
    if dry_run:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(dead_letters)
                    .where(dead_letters.c.created_at < cutoff)
                )
            ).scalar_one()
        )
    # links from younger rows to purged ones become NULL (ON DELETE SET NULL)
    deleted = (
        await conn.execute(dead_letters.delete().where(dead_letters.c.created_at < cutoff))
    ).rowcount
    await conn.execute(
        event_log.insert().values(
            occurred_at=now,
            actor=actor,
            entity_type="dead_letters",
            entity_id="*",
            event_type="dead_letters.purged",
            metadata={
                "deleted": deleted,
                "older_than_days": older_than / timedelta(days=1),
                "cutoff": cutoff.isoformat(),
            },
        )
    )
    return int(deleted)


class PurgeParams(BaseModel):
    model_config = {"extra": "forbid"}

    older_than_days: int | None = Field(
        default=None, ge=1, le=3650, description="default: JOBSTREAM_DLQ_RETENTION_DAYS"
    )


async def purge_job(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    params = ctx.params
    assert isinstance(params, PurgeParams)
    days = params.older_than_days or ctx.settings.dlq_retention_days
    deleted = await purge(
        conn, timedelta(days=days), ctx.actor or "scheduler", ctx.now, dry_run=ctx.dry_run
    )
    return JobResult(deleted, [{"deleted": deleted, "older_than_days": days}])


PURGE_JOB = Job(
    name="engine.purge-dead-letters",
    cron="0 4 * * 0",
    run=purge_job,
    params=PurgeParams,
    description=(
        "Dead letters older than the retention period (30 days by default) are deleted "
        "from the index; the dead-letter topic keeps its own retention. Logged with the actor."
    ),
)
