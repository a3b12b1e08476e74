"""What the dashboard shows, read from the database: badges, jobs overview, run history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.engine import job_admin

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


async def jobs_overview(rt: Runtime, now: datetime) -> list[dict[str, Any]]:
    """Each job with its schedule, pause, next run in its own timezone and its latest run."""
    views = await job_admin.overview(rt.engine, rt.jobs, now)
    return [{**view.as_dict(), "next_run": view.next_run} for view in views]


async def job_history(rt: Runtime, name: str, limit: int = 50) -> list[dict[str, Any]]:
    return await job_admin.history(rt.engine, name, limit)


__all__ = ["Badge", "attention", "job_history", "jobs_overview"]
