"""What operators see and do with jobs: overview, history, pause, resume, backfill.

Shared by the CLI and the API, so both say the same thing in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.tables import job_pauses, job_runs, schedules
from service.engine import records, runqueue
from service.engine.schedule import Schedule
from service.engine.workflow import Job


class JobInputError(ValueError):
    """A request naming a range or scope that cannot be run; ``field`` says which."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class JobView:
    """A job as the list shows it: its declaration, pause, next and last run."""

    job: Job
    paused: dict[str, Any] | None
    next_run: datetime | None
    last_run: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        job = self.job
        return {
            "name": job.name,
            "description": job.description,
            "cron": job.cron,
            "timezone": "per scope" if job.scopes else job.timezone,
            "enabled": job.enabled,
            "paused": self.paused,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "last_run": self.last_run,
            "overlap": job.overlap,
            "timeout_s": job.timeout_s,
            "catchup_window_s": job.catchup_window_s,
            "deadline_s": job.deadline_s,
        }


_RUN_FIELDS = (
    job_runs.c.id,
    job_runs.c.job,
    job_runs.c.scope,
    job_runs.c.slot,
    job_runs.c.trigger,
    job_runs.c.actor,
    job_runs.c.status,
    job_runs.c.attempt,
    job_runs.c.started_at,
    job_runs.c.finished_at,
    job_runs.c.duration_ms,
    job_runs.c.affected,
    job_runs.c.error,
    job_runs.c.next_attempt_at,
)


#: The newest run (by slot) of each named job, one index probe per job.
_LATEST = sa.text(
    "SELECT r.* FROM unnest(CAST(:names AS text[])) AS j(name) CROSS JOIN LATERAL ("
    f"SELECT {', '.join(c.name for c in _RUN_FIELDS)} FROM job_runs "
    "WHERE job = j.name ORDER BY slot DESC, id DESC LIMIT 1) r"
)


def run_dict(row: Any) -> dict[str, Any]:
    """A job_runs row as JSON-ready fields (times in ISO 8601, no scope as None)."""
    out = {c.name: getattr(row, c.name) for c in _RUN_FIELDS}
    out["scope"] = out["scope"] or None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in out.items()}


def next_run(job: Job, now: datetime, timezones: set[str]) -> datetime | None:
    """The next slot after ``now``, in the schedule's own timezone (earliest scope's)."""
    if not job.enabled:
        return None
    zones = timezones if job.scopes else {job.timezone}
    slots = [Schedule(job.cron, tz) for tz in zones]
    nexts = [s.next_after(now).astimezone(s.zone) for s in slots]
    return min(nexts, default=None)


async def overview(engine: AsyncEngine, jobs: list[Job], now: datetime) -> list[JobView]:
    """Every job with its pause, next run after ``now`` and newest run."""
    async with engine.connect() as conn:
        pauses = {r.job: r for r in await conn.execute(sa.select(job_pauses))}
        rows = await conn.execute(_LATEST, {"names": [job.name for job in jobs]})
        last = {r.job: r for r in rows}
        zones: dict[str, set[str]] = {}
        for row in await conn.execute(sa.select(schedules.c.job, schedules.c.timezone)):
            zones.setdefault(row.job, set()).add(row.timezone)
    views = []
    for job in jobs:
        pause = pauses.get(job.name)
        views.append(
            JobView(
                job=job,
                paused=(
                    {"at": pause.paused_at.isoformat(), "by": pause.actor, "reason": pause.reason}
                    if pause is not None
                    else None
                ),
                next_run=None if pause else next_run(job, now, zones.get(job.name, set())),
                last_run=run_dict(last[job.name]) if job.name in last else None,
            )
        )
    return views


async def history(
    engine: AsyncEngine, job: str, limit: int = 50, status: str | None = None
) -> list[dict[str, Any]]:
    """The job's runs, newest slot first, optionally of one status."""
    query = (
        sa.select(*_RUN_FIELDS)
        .where(job_runs.c.job == job)
        .order_by(job_runs.c.slot.desc(), job_runs.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(job_runs.c.status == status)
    async with engine.connect() as conn:
        return [run_dict(row) for row in await conn.execute(query)]


async def pause(engine: AsyncEngine, job: str, actor: str, reason: str | None = None) -> bool:
    """Stop the clock ticking ``job``; False if it was paused already."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                pg_insert(job_pauses)
                .values(job=job, actor=actor, reason=reason)
                .on_conflict_do_nothing()
                .returning(job_pauses.c.job)
            )
        ).first()
        if row is not None:
            await records.write(conn, [_logged(job, "job.paused", actor, {"reason": reason})], [])
    return row is not None


async def resume(engine: AsyncEngine, job: str, actor: str, now: datetime) -> bool:
    """Tick ``job`` again from ``now`` on: the paused stretch is neither run nor missed."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                job_pauses.delete().where(job_pauses.c.job == job).returning(job_pauses.c.job)
            )
        ).first()
        if row is None:
            return False
        await conn.execute(
            schedules.update()
            .where(schedules.c.job == job)
            .values(
                last_slot=sa.func.greatest(schedules.c.last_slot, now),
                deadline_checked=sa.func.greatest(
                    sa.func.coalesce(schedules.c.deadline_checked, now), now
                ),
            )
        )
        await records.write(conn, [_logged(job, "job.resumed", actor, {})], [])
    return True


def _logged(job: str, event_type: str, actor: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return records.log_row(
        entity_type="job", entity_id=job, event_type=event_type, actor=actor, metadata=metadata
    )


def backfill_slots(
    job: Job, start: datetime, end: datetime, now: datetime, max_slots: int, timezone: str
) -> list[datetime]:
    """The slots of a past range, checked: ``from`` before ``to``, ``to`` not in the future."""
    if end < start:
        raise JobInputError("to", f"{end.isoformat()} is before from ({start.isoformat()})")
    if end > now:
        raise JobInputError("to", f"{end.isoformat()} is in the future: backfill runs past slots")
    slots = []
    for slot in Schedule(job.cron, timezone).between(start, end):
        slots.append(slot)
        if len(slots) > max_slots:
            raise JobInputError(
                "to",
                f"from..to holds more than {max_slots} slots of {job.cron!r}: "
                "narrow the range (or raise backfill_max_slots)",
            )
    return slots


async def scope_timezone(engine: AsyncEngine, job: Job, scope: str | None) -> str:
    """The timezone a run of ``job`` (for ``scope``) uses; a scoped job needs a known scope."""
    if job.scopes is None:
        if scope:
            raise JobInputError("scope", f"{job.name} has no scopes; leave scope out")
        return job.timezone
    if not scope:
        raise JobInputError("scope", f"{job.name} runs per scope: name one")
    async with engine.connect() as conn:
        tz = (
            await conn.execute(
                sa.select(schedules.c.timezone).where(
                    schedules.c.job == job.name, schedules.c.scope == scope
                )
            )
        ).scalar()
    if tz is None:
        raise JobInputError("scope", f"{job.name} has no scope {scope!r} (yet)")
    return str(tz)


async def queue_backfill(
    engine: AsyncEngine,
    job: Job,
    slots: list[datetime],
    *,
    actor: str,
    params: dict[str, Any],
    scope: str | None = None,
    timezone: str | None = None,
) -> list[int]:
    """Queue one ``backfill`` run per slot for the executors; slots with a run are left."""
    queued = []
    async with engine.begin() as conn:
        for slot in slots:
            run_id = await runqueue.enqueue(
                conn,
                job=job.name,
                slot=slot,
                trigger="backfill",
                scope=scope,
                timezone=timezone or job.timezone,
                actor=actor,
                params=params,
            )
            if run_id is not None:
                queued.append(run_id)
    return queued
