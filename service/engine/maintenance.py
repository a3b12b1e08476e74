"""Engine maintenance jobs: prune the inbox and the published outbox; a daily health check.

Set-based like every job: one DELETE per prune, in the runner's transaction, with
an event-log row saying what went. Retention comes from Settings; the cut-off is
measured from the slot (``ctx.now``), so a backfilled run prunes what it would have.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables import event_log
from service.engine import dlq_actions, records
from service.engine.workflow import Job, JobContext, JobResult

_PRUNABLE = {
    # table: (timestamp column, extra condition)
    "processed_messages": ("processed_at", "TRUE"),
    "outbox": ("published_at", "published_at IS NOT NULL"),
}


async def _prune(conn: AsyncConnection, ctx: JobContext, table: str, days: int) -> JobResult:
    stamp, condition = _PRUNABLE[table]  # fixed names from the table above, never input
    where = f"{condition} AND {stamp} < CAST(:cutoff AS timestamptz)"
    cutoff = ctx.now - timedelta(days=days)
    if ctx.dry_run:
        sql = f"SELECT count(*) FROM {table} WHERE {where}"
    else:
        sql = (
            f"WITH gone AS (DELETE FROM {table} WHERE {where} RETURNING 1) "
            "SELECT count(*) FROM gone"
        )
    deleted = int((await conn.execute(sa.text(sql), {"cutoff": cutoff})).scalar_one())
    summary = {"table": table, "deleted": deleted, "older_than": cutoff.isoformat(), "days": days}
    if not ctx.dry_run:
        await conn.execute(
            event_log.insert().values(
                occurred_at=ctx.now,
                actor=ctx.actor or "scheduler",
                entity_type="table",
                entity_id=table,
                event_type="maintenance.pruned",
                metadata={**summary, "trigger": ctx.trigger},
                correlation_id=f"run:{ctx.run_id}" if ctx.run_id else None,
            )
        )
    return JobResult(deleted, [summary])


async def prune_inbox(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Forget inbox ids older than ``inbox_retention_days`` (redeliveries come far sooner)."""
    return await _prune(conn, ctx, "processed_messages", ctx.settings.inbox_retention_days)


async def prune_outbox(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Delete outbox rows published more than ``outbox_retention_days`` ago."""
    return await _prune(conn, ctx, "outbox", ctx.settings.outbox_retention_days)


BAD_RUNS = sa.text(
    """
    SELECT id, job, scope, slot, status, trigger, attempt, error
    FROM job_runs
    WHERE status IN ('failed', 'missed') AND next_attempt_at IS NULL
      AND slot > CAST(:now AS timestamptz) - interval '24 hours'
      AND slot <= CAST(:now AS timestamptz)
    ORDER BY slot, id
    """
)
REPORT_ROWS = 50


def _row(row: Any) -> dict[str, Any]:
    return {
        "run_id": row.id,
        "job": row.job,
        "scope": row.scope or None,
        "slot": row.slot.isoformat(),
        "status": row.status,
        "trigger": row.trigger,
        "attempt": row.attempt,
        "error": (row.error or "")[:300],
    }


async def health_check(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Report the failed and missed runs of the 24 hours before the slot, if any."""
    bad = [_row(r) for r in await conn.execute(BAD_RUNS, {"now": ctx.now})]
    if bad and not ctx.dry_run:
        counts = {s: sum(1 for r in bad if r["status"] == s) for s in ("failed", "missed")}
        report = records.alert(
            ctx.settings,
            event_id=records.derived_id("health", ctx.now.isoformat()),
            template="job.health",
            subject="jobs",
            data={
                "since": (ctx.now - timedelta(hours=24)).isoformat(),
                "until": ctx.now.isoformat(),
                **counts,
                "runs": bad[:REPORT_ROWS],
                "truncated": len(bad) > REPORT_ROWS,
            },
        )
        await records.write(conn, [], [report])
    return JobResult(len(bad), bad)


JOBS = (
    Job(
        name="engine.prune-inbox",
        cron="30 2 * * *",
        run=prune_inbox,
        description="Delete inbox (processed message) ids older than inbox_retention_days.",
    ),
    Job(
        name="engine.prune-outbox",
        cron="45 2 * * *",
        run=prune_outbox,
        description="Delete outbox rows published more than outbox_retention_days ago.",
    ),
    Job(
        name="engine.health-check",
        cron="0 7 * * *",
        timezone="UTC",
        run=health_check,
        description="Notify the operators of failed and missed runs of the last 24 hours.",
    ),
    # the dead-letter module owns its table and its purge
    dlq_actions.PURGE_JOB,
)
