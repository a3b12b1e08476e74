"""Challenges jobs: auto-complete ended challenges, refresh statistics, streak reminders
per timezone group, and purge old notifications in bounded batches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.challenges import CHALLENGES_OUTBOUND_TOPIC
from service.engine.sql import bind, plain
from service.engine.workflow import JobContext, JobResult, Scope
from service.workflows.challenges import queries, rules

CHANNEL = "push"
#: Transaction-scoped advisory lock key: one statistics refresh at a time, so the
#: snapshot taken before a refresh is the view as that refresh found it.
STATS_LOCK_KEY = 0x6A5C_0001


class CleanupParams(BaseModel):
    model_config = {"extra": "forbid"}

    retention_days: int = Field(
        default=rules.RETENTION_DAYS, ge=1, le=3650, description="delete notifications older"
    )
    batch_size: int = Field(
        default=1000, ge=1, le=50_000, description="rows deleted per short transaction"
    )


def _params(ctx: JobContext, **extra: Any) -> dict[str, Any]:
    return bind(ctx, CHALLENGES_OUTBOUND_TOPIC, channel=CHANNEL, **extra)


async def _rows(
    conn: AsyncConnection, statement: sa.TextClause, **params: Any
) -> list[dict[str, Any]]:
    return [plain(r) for r in await conn.execute(statement, params)]


async def auto_complete(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Close active challenges past their end: ``completed`` when the members' average
    completion rate is at least 80 %, else ``failed``; notify each of their members once."""
    await conn.execute(queries.LOCK_DUE, {"now": ctx.now})
    rows = await _rows(
        conn, queries.AUTO_COMPLETE, **_params(ctx, threshold=rules.COMPLETION_THRESHOLD)
    )
    return JobResult(len(rows), rows)


async def refresh_stats(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Refresh ``challenge_stats`` concurrently (readers are never blocked) and return,
    log and announce the challenges whose statistics changed."""
    if ctx.dry_run:  # no refresh: diff the view's query against the view
        rows = await _rows(conn, queries.STATS_PREVIEW)
        return JobResult(len(rows), rows)
    await conn.execute(queries.STATS_LOCK, {"lock_key": STATS_LOCK_KEY})
    for statement in queries.STATS_SNAPSHOT:
        await conn.execute(statement)
    await conn.execute(queries.STATS_REFRESH)
    rows = await _rows(conn, queries.STATS_CHANGED, **_params(ctx))
    return JobResult(len(rows), rows)


async def timezone_scopes(conn: AsyncConnection) -> list[Scope]:
    """One schedule per distinct user timezone: the streak job runs at 08:00 in each."""
    return [Scope(id=tz, timezone=tz) for tz in (await conn.execute(queries.TIMEZONES)).scalars()]


async def streak_reminders(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Remind the users of the timezone ``ctx.scope`` who have not recorded progress
    today (their local day) in a running challenge; once per user and local day.

    Without a scope (a manual run) every timezone group is reminded, each by its own
    local day.
    """
    rows = await _rows(conn, queries.STREAK_REMINDERS, **_params(ctx, scope=ctx.scope))
    return JobResult(len(rows), rows)


async def cleanup_notifications(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Delete notifications older than the retention period (30 days by default).

    Each batch of at most ``batch_size`` rows is deleted, logged and announced in its
    own short transaction, so no lock is held for long and a failure keeps the
    batches already done; a rerun simply continues. Newer rows are never touched.
    """
    params = ctx.params
    assert isinstance(params, CleanupParams)
    cutoff = ctx.now - timedelta(days=params.retention_days)
    if ctx.dry_run:
        rows = await _rows(conn, queries.PURGE_PREVIEW, cutoff=cutoff)
        return JobResult(len(rows), rows)
    deleted: list[dict[str, Any]] = []
    while True:
        async with conn.engine.begin() as batch_conn:
            batch = await _rows(
                batch_conn,
                queries.PURGE_BATCH,
                **_params(ctx, cutoff=cutoff, batch_size=params.batch_size),
            )
        deleted.extend(batch)
        if len(batch) < params.batch_size:
            return JobResult(len(deleted), deleted)
