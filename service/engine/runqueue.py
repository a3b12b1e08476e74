"""The run queue: job_runs rows in ``queued``, put there by ticks, retries and backfills.

``enqueue`` is idempotent by the (job, scope, slot) unique key, so a duplicate tick,
a second clock or a redelivered command queue a slot once. ``claim`` takes the
oldest due row with FOR UPDATE SKIP LOCKED, so any number of executors share the
queue, and applies the overlap policy against the job's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables import job_runs
from service.engine.joblocks import LOCK_HELD_SQL, notify, overlaps, try_lock
from service.engine.metrics import JOB_RUNS
from service.engine.runner import OVERLAP, RUN_COLUMNS, Run, start
from service.engine.workflow import Job


async def enqueue(
    conn: AsyncConnection,
    *,
    job: str,
    slot: datetime,
    trigger: str,
    scope: str | None = None,
    timezone: str = "UTC",
    actor: str | None = None,
    params: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> int | None:
    """Queue a run of ``job`` for ``slot``; None if that slot already has a run."""
    row = (
        await conn.execute(
            pg_insert(job_runs)
            .values(
                job=job,
                scope=scope or "",
                slot=slot,
                timezone=timezone,
                trigger=trigger,
                actor=actor,
                params=params or {},
                status="queued",
                correlation_id=correlation_id,
            )
            .on_conflict_do_nothing()
            .returning(job_runs.c.id)
        )
    ).first()
    if row is not None:
        await notify(conn)
    return row.id if row is not None else None


async def requeue(conn: AsyncConnection, run_id: int, attempt: int) -> bool:
    """Queue attempt ``attempt`` of a run whose previous attempt failed; False if stale."""
    row = (
        await conn.execute(
            job_runs.update()
            .where(
                job_runs.c.id == run_id,
                job_runs.c.status == "failed",
                job_runs.c.attempt == attempt - 1,
                job_runs.c.next_attempt_at.is_not(None),
            )
            .values(
                status="queued",
                attempt=attempt,
                not_before=sa.func.now(),
                next_attempt_at=None,
            )
            .returning(job_runs.c.id)
        )
    ).first()
    if row is not None:
        await notify(conn)
    return row is not None


_earlier = job_runs.alias("earlier")
#: The oldest due run that is first in line for its schedule: runs of one (job,
#: scope) start in slot order, whatever order they were queued in.
_DUE = (
    sa.select(*RUN_COLUMNS)
    .where(
        job_runs.c.status == "queued",
        job_runs.c.not_before <= sa.func.now(),
        ~sa.exists().where(
            _earlier.c.job == job_runs.c.job,
            _earlier.c.scope == job_runs.c.scope,
            _earlier.c.status == "queued",
            _earlier.c.slot < job_runs.c.slot,
        ),
    )
    .order_by(job_runs.c.not_before, job_runs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)


@dataclass(frozen=True)
class Claim:
    """What ``claim`` did: ``run`` is set when the caller now holds the lock and must run it."""

    found: bool
    run: Run | None = None
    job: Job | None = None


async def claim(conn: AsyncConnection, jobs: dict[str, Job], requeue_after_s: float) -> Claim:
    """Take the oldest due queued run, in the caller's transaction.

    If its job's lock is free, take the lock (session-level: it outlives the
    transaction) and mark it ``running``. Otherwise the overlap policy: ``skip``
    records the slot as skipped if it came due while the other run was running;
    else it waits (``hand_over`` releases it when that run finishes).
    """
    row = (await conn.execute(_DUE)).first()
    if row is None:
        return Claim(found=False)
    queued = Run.of(row)
    job = jobs.get(queued.job)
    done = job_runs.update().where(job_runs.c.id == queued.id)
    if job is None:
        error = f"no job named {queued.job!r} in this deployment"
        await conn.execute(done.values(status="failed", error=error, finished_at=sa.func.now()))
        return Claim(found=True)
    if await try_lock(conn, job.name, queued.scope):
        return Claim(found=True, run=await start(conn, queued.id, job), job=job)
    if job.overlap == "skip" and await overlaps(conn, job.name, queued.scope, queued.slot):
        await conn.execute(done.values(status="skipped", error=OVERLAP, finished_at=sa.func.now()))
        JOB_RUNS.labels(job=job.name, status="skipped").inc()
    else:
        later = sa.func.now() + timedelta(seconds=requeue_after_s)
        await conn.execute(done.values(not_before=later))
    return Claim(found=True)


_STALLED = sa.text(
    "SELECT "
    + ", ".join(f"r.{c.name}" for c in RUN_COLUMNS)
    + " FROM job_runs r WHERE r.status = 'running' AND (r.timeout_at < now() OR NOT "
    + LOCK_HELD_SQL
    + ") ORDER BY r.id FOR UPDATE OF r SKIP LOCKED"
)


async def stalled(conn: AsyncConnection) -> list[Run]:
    """Running rows whose runner died (lock free) or hung past its timeout, locked for us."""
    return [Run.of(row) for row in await conn.execute(_STALLED)]
