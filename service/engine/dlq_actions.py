"""What operators do with dead letters: replay, discard, purge; each logged with its actor.

Replay sends the untouched bytes back into the handler's first retry tier through
the outbox, in the transaction that marks the row replayed and writes the event
log; the handler's inbox makes a double replay harmless, and a replay that fails
again becomes a new dead letter linked to this one (``replay_of``), never a loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.db.tables import dead_letters, event_log
from service.engine import metrics, topics
from service.engine.uow import UnitOfWork
from service.engine.workflow import Job, JobContext, JobResult

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
