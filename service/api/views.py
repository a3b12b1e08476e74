"""What the dashboard shows, read from the database: badges, jobs overview, run history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from cronsim import CronSim
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables import job_runs

if TYPE_CHECKING:
    from service.app import Runtime


@dataclass(frozen=True)
class Badge:
    label: str
    count: int
    href: str | None = None
    job: str | None = None


FAILED_24H = sa.text(
    "SELECT count(*) FROM job_runs WHERE status IN ('failed', 'missed') "
    "AND coalesce(finished_at, created_at) > CAST(:now AS timestamptz) - interval '24 hours'"
)
PENDING_DLQ = sa.text("SELECT count(*) FROM dead_letters WHERE status = 'pending'")


async def attention(rt: Runtime, conn: AsyncConnection, now: datetime) -> list[Badge]:
    """Every workflow's own badges, then failed or missed runs (24 h) and pending dead letters."""
    badges: list[Badge] = []
    for wf in rt.workflows:
        if wf.attention is not None:
            for item in await wf.attention(conn, rt.settings, now):
                badges.append(Badge(item.label, item.count, job=item.job))
    failed = (await conn.execute(FAILED_24H, {"now": now})).scalar_one()
    badges.append(Badge("failed or missed runs (24 h)", int(failed)))
    pending = (await conn.execute(PENDING_DLQ)).scalar_one()
    badges.append(Badge("dead letters pending", int(pending), href="dlq"))
    return badges


def _next_run(cron: str, timezone: str, now: datetime) -> datetime | None:
    try:
        zone = ZoneInfo(timezone)
        return next(CronSim(cron, now.astimezone(zone)))
    except Exception:
        return None


async def jobs_overview(rt: Runtime, now: datetime) -> list[dict[str, Any]]:
    """Each job with its schedule, next run in its own timezone and its latest run."""
    async with rt.engine.connect() as conn:
        latest = {
            row.job: dict(row._mapping)
            for row in await conn.execute(
                sa.text("SELECT DISTINCT ON (job) * FROM job_runs ORDER BY job, created_at DESC")
            )
        }
    return [
        {
            "name": job.name,
            "description": job.description,
            "cron": job.cron,
            "timezone": "per scope" if job.scopes else job.timezone,
            "next_run": None if job.scopes else _next_run(job.cron, job.timezone, now),
            "paused": None,
            "last_run": latest.get(job.name),
        }
        for job in rt.jobs
    ]


async def job_history(rt: Runtime, name: str, limit: int = 50) -> list[dict[str, Any]]:
    async with rt.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(job_runs)
            .where(job_runs.c.job == name)
            .order_by(job_runs.c.created_at.desc())
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]


__all__ = ["Badge", "attention", "job_history", "jobs_overview", "timedelta"]
