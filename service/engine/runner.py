"""One run of a job, start to finish: its lock, the timeout, and the outcome.

A PostgreSQL session advisory lock per (job, scope), held by the connection that
runs the job, *is* what "a run of this job is running" means: the overlap policy
tests it, and a ``running`` row whose lock is free belongs to a runner that died.
``succeeded`` is written in the job's own transaction, so a run's effects and its
record commit together or not at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.db.tables import job_runs
from service.engine import job_failures
from service.engine.faults import crash_point
from service.engine.joblocks import WORKER, overlaps, release, try_lock, wait_lock
from service.engine.jobs import RunOutcome
from service.engine.metrics import JOB_RUNS, JOB_SECONDS
from service.engine.retry import ErrorClass, classify
from service.engine.workflow import Job, JobContext, JobResult

log = logging.getLogger("jobstream.jobs")

OVERLAP = "overlap: another run of this job holds its lock"
#: A runner past its timeout by this much is presumed hung (asyncio should have won).
STALL_GRACE = timedelta(seconds=5)

RUN_COLUMNS = (
    job_runs.c.id,
    job_runs.c.job,
    job_runs.c.scope,
    job_runs.c.slot,
    job_runs.c.timezone,
    job_runs.c.trigger,
    job_runs.c.actor,
    job_runs.c.params,
    job_runs.c.attempt,
    job_runs.c.correlation_id,
)


@dataclass(frozen=True)
class Run:
    """A job_runs row as the runner needs it."""

    id: int
    job: str
    scope: str
    slot: datetime
    timezone: str
    trigger: str
    actor: str | None
    params: dict[str, Any]
    attempt: int
    correlation_id: str | None

    @classmethod
    def of(cls, row: Any) -> Run:
        return cls(**{c.name: getattr(row, c.name) for c in RUN_COLUMNS})


class LostRun(Exception):
    """The row is no longer ours (recovered as stalled meanwhile): roll the job back."""


def running_values(job: Job) -> dict[str, Any]:
    """Columns of a run that starts now in this backend (whose pid holds the lock)."""
    return {
        "status": "running",
        "started_at": sa.func.now(),
        "finished_at": None,
        "worker": WORKER,
        "lock_pid": sa.func.pg_backend_pid(),
        "timeout_at": sa.func.now() + timedelta(seconds=job.timeout_s) + STALL_GRACE,
    }


async def start(conn: AsyncConnection, run_id: int, job: Job) -> Run:
    """Mark a claimed queued run ``running`` (the caller commits and holds the lock)."""
    row = (
        await conn.execute(
            job_runs.update()
            .where(job_runs.c.id == run_id)
            .values(**running_values(job))
            .returning(*RUN_COLUMNS)
        )
    ).one()
    return Run.of(row)


def _jsonable(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    kept = json.loads(json.dumps(rows[:limit], default=str))
    return {"rows": kept, "truncated": len(rows) > limit}


async def _run_and_succeed(
    conn: AsyncConnection, job: Job, run: Run, ctx: JobContext, started: float
) -> JobResult:
    async with conn.begin():
        # Integer milliseconds, formatted by us: SET takes no bind parameters.
        await conn.execute(sa.text(f"SET LOCAL statement_timeout = {int(job.timeout_s * 1000)}"))
        result = await job.run(conn, ctx)
        done = await conn.execute(
            job_runs.update()
            .where(
                job_runs.c.id == run.id,
                job_runs.c.status == "running",
                job_runs.c.attempt == run.attempt,
            )
            .values(
                status="succeeded",
                finished_at=sa.func.now(),
                duration_ms=int((time.perf_counter() - started) * 1000),
                affected=result.affected,
                result=_jsonable(result.rows, ctx.settings.job_result_rows),
                error=None,
                next_attempt_at=None,
            )
            .returning(job_runs.c.id)
        )
        if done.first() is None:
            raise LostRun(f"run {run.id} was recovered as stalled while it ran")
        crash_point(ctx.settings, "jobs.before_commit")
    return result


def context(job: Job, run: Run, settings: Settings, params: BaseModel) -> JobContext:
    """What the job sees: the slot as ``now``, the run's trigger, actor and scope."""
    return JobContext(
        now=run.slot,
        trigger=run.trigger,  # type: ignore[arg-type]
        actor=run.actor,
        params=params,
        dry_run=False,
        settings=settings,
        scope=run.scope or None,
        timezone=run.timezone,
        run_id=run.id,
    )


async def execute(
    engine: AsyncEngine,
    conn: AsyncConnection,
    job: Job,
    run: Run,
    settings: Settings,
    *,
    retry: bool,
) -> RunOutcome:
    """Run ``job`` for a ``running`` row on ``conn``, which holds the job's lock.

    On failure the attempt is recorded (and, with ``retry``, retried by the job's
    policy through the retry tiers) on a separate connection while the lock is
    still held, so the stalled-run sweep cannot take the row meanwhile.
    """
    started = time.perf_counter()
    timer = asyncio.timeout(job.timeout_s)
    try:
        params = job.params.model_validate(run.params)
        async with timer:
            result = await _run_and_succeed(
                conn, job, run, context(job, run, settings, params), started
            )
    except LostRun as exc:
        log.warning(str(exc), extra={"action": "job_lost", "job": job.name, "run_id": run.id})
        return RunOutcome(run.id, "lost", None, str(exc))
    except Exception as exc:
        expired = timer.expired()
        if expired:  # the connection was interrupted mid-statement: never reuse it
            await conn.invalidate()
        timed_out = expired or _statement_timeout(exc)
        error = f"timed out after {job.timeout_s:g} s" if timed_out else describe(exc)
        error_class = classify(exc, non_retryable=(ValidationError,))
        elapsed = time.perf_counter() - started
        JOB_SECONDS.labels(job=job.name).observe(elapsed)
        async with engine.begin() as side:
            status = await job_failures.record_failure(
                side,
                job,
                run,
                settings,
                error=error,
                retry=retry and error_class is ErrorClass.RETRYABLE,
                duration_ms=int(elapsed * 1000),
            )
        log.warning(
            "job attempt failed",
            extra={"action": "job_failed", "job": job.name, "run_id": run.id, "error": error},
        )
        return RunOutcome(run.id, status, None, error)
    elapsed = time.perf_counter() - started
    JOB_SECONDS.labels(job=job.name).observe(elapsed)
    JOB_RUNS.labels(job=job.name, status="succeeded").inc()
    log.info(
        "job succeeded",
        extra={"action": "job_succeeded", "job": job.name, "affected": result.affected},
    )
    return RunOutcome(run.id, "succeeded", result)


def _statement_timeout(exc: BaseException) -> bool:
    """PostgreSQL cancelled the statement at ``statement_timeout`` (SQLSTATE 57014)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "57014"


def describe(exc: BaseException) -> str:
    """An error as stored in job_runs.error."""
    return f"{type(exc).__name__}: {exc}"[:2000]


async def _insert_run(
    conn: AsyncConnection, job: Job, values: dict[str, Any], status: str
) -> Run | None:
    extra = running_values(job) if status == "running" else {"finished_at": sa.func.now()}
    stmt = (
        pg_insert(job_runs)
        .values(**{**values, **extra, "status": status})
        .on_conflict_do_nothing()
        .returning(*RUN_COLUMNS)
    )
    row = (await conn.execute(stmt)).first()
    return Run.of(row) if row is not None else None


async def run_inline(
    engine: AsyncEngine,
    job: Job,
    settings: Settings,
    *,
    slot: datetime,
    trigger: str,
    actor: str | None,
    params: BaseModel,
    dry_run: bool = False,
    scope: str | None = None,
    timezone: str | None = None,
) -> RunOutcome:
    """Run a job here and now (manual runs, CLI backfill) through the same lock and record.

    A dry run executes in a transaction that is rolled back and records nothing.
    Failures are reported to the caller, not retried.
    """
    tz = timezone or job.timezone
    if dry_run:
        ctx = JobContext(slot, trigger, actor, params, True, settings, scope, tz)  # type: ignore[arg-type]
        async with engine.connect() as conn, conn.begin() as tx:
            async with asyncio.timeout(job.timeout_s):
                result = await job.run(conn, ctx)
            await tx.rollback()
        return RunOutcome(None, "dry_run", result)
    values = {
        "job": job.name,
        "scope": scope or "",
        "slot": slot,
        "timezone": tz,
        "trigger": trigger,
        "actor": actor,
        "params": params.model_dump(mode="json"),
    }
    conn = await engine.connect()
    locked = False
    try:
        locked = await try_lock(conn, job.name, scope or "")
        beside = not locked and await overlaps(conn, job.name, scope or "", slot)
        await conn.commit()
        if beside and job.overlap == "skip":
            skipped = await _insert_run(conn, job, {**values, "error": OVERLAP}, "skipped")
            await conn.commit()
            if skipped is None:
                return RunOutcome(None, "duplicate", None, "this slot already has a run")
            JOB_RUNS.labels(job=job.name, status="skipped").inc()
            return RunOutcome(skipped.id, "skipped", None, OVERLAP)
        if not locked:
            await wait_lock(conn, job.name, scope or "")
            locked = True
        run = await _insert_run(conn, job, values, "running")
        await conn.commit()
        if run is None:
            return RunOutcome(None, "duplicate", None, "this slot already has a run")
        return await execute(engine, conn, job, run, settings, retry=False)
    finally:
        await release(conn, job.name, scope or "", locked)
