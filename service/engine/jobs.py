"""Running a job: one transaction for the job's statements and its ``job_runs`` row.

A run is unique per (job, slot); a dry run executes the job's preview and records
nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.tables import job_runs
from service.engine.workflow import Job, JobContext, JobResult

log = logging.getLogger("jobstream.jobs")


class JobNotFound(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no job named {name!r}; known jobs: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class RunOutcome:
    run_id: int | None
    status: str
    result: JobResult | None
    error: str | None = None


def find_job(jobs: list[Job], name: str) -> Job:
    for job in jobs:
        if job.name == name:
            return job
    raise JobNotFound(name, [j.name for j in jobs])


async def run_job(engine: AsyncEngine, job: Job, ctx: JobContext) -> RunOutcome:
    """Run ``job`` for slot ``ctx.now``; a second run of the same slot does nothing."""
    if ctx.dry_run:
        async with engine.connect() as conn, conn.begin() as tx:
            result = await job.run(conn, ctx)
            await tx.rollback()
        return RunOutcome(None, "dry_run", result)

    started = time.perf_counter()
    async with engine.begin() as conn:
        run_id = (
            await conn.execute(
                pg_insert(job_runs)
                .values(
                    job=job.name,
                    slot=ctx.now,
                    trigger=ctx.trigger,
                    actor=ctx.actor,
                    status="running",
                    params=ctx.params.model_dump(mode="json"),
                    started_at=sa.func.now(),
                )
                .on_conflict_do_nothing()
                .returning(job_runs.c.id)
            )
        ).scalar_one_or_none()
    if run_id is None:
        return RunOutcome(None, "duplicate", None)

    try:
        async with engine.begin() as conn:
            result = await job.run(conn, ctx)
            await conn.execute(
                job_runs.update()
                .where(job_runs.c.id == run_id)
                .values(
                    status="succeeded",
                    finished_at=sa.func.now(),
                    duration_ms=int((time.perf_counter() - started) * 1000),
                    affected=result.affected,
                )
            )
    except Exception as exc:
        await _mark_failed(engine, run_id, started, exc)
        log.exception("job failed", extra={"action": "job_failed", "job": job.name})
        return RunOutcome(run_id, "failed", None, repr(exc))
    log.info(
        "job succeeded",
        extra={"action": "job_succeeded", "job": job.name, "affected": result.affected},
    )
    return RunOutcome(run_id, "succeeded", result)


async def _mark_failed(
    engine: AsyncEngine, run_id: int, started: float, exc: BaseException
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            job_runs.update()
            .where(job_runs.c.id == run_id)
            .values(
                status="failed",
                finished_at=sa.func.now(),
                duration_ms=int((time.perf_counter() - started) * 1000),
                error=repr(exc)[:2000],
            )
        )


def manual_slot(now: datetime) -> datetime:
    """A manual run's slot is the moment it was asked for."""
    return now
