"""Litigation reports: the daily analytics snapshot and the automation health check."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from service.engine.sql import log_and_outbox, log_rows, notification_rows
from service.engine.workflow import JobContext, JobResult
from service.workflows.litigation.jobs import NOW, SLA_DUE, TENANT, bind

# Figures at the slot time ``now``, over the tenant's local day that contains it.
# An SLA is decided once: met when the task is completed by its SLA time, breached
# when that time passes first; each counts on the local day it was decided.
_OPEN_AT_NOW = f"t.created_at <= {NOW} AND (t.completed_at IS NULL OR t.completed_at > {NOW})"
_IN_DAY = "{col} >= s.day_start AND {col} < s.day_end AND {col} <= " + NOW

_ANNOUNCE = log_and_outbox(
    "announced",
    entity_type="litigation_tenant",
    event_type="litigation.snapshot.taken",
    entity_id="tenant_id",
)

SNAPSHOT = sa.text(
    f"""WITH scope AS (
    SELECT id, ({NOW} AT TIME ZONE timezone)::date AS day,
           date_trunc('day', {NOW} AT TIME ZONE timezone) AT TIME ZONE timezone AS day_start,
           (date_trunc('day', {NOW} AT TIME ZONE timezone) + interval '1 day')
               AT TIME ZONE timezone AS day_end
    FROM litigation_tenants WHERE {TENANT.format(col="id")}
),
figures AS (
    SELECT s.id AS tenant_id, s.day,
        count(t.id) FILTER (WHERE {_OPEN_AT_NOW}) AS open_tasks,
        count(t.id) FILTER (WHERE {_OPEN_AT_NOW} AND t.due_at <= {NOW}) AS overdue_tasks,
        count(t.id) FILTER (WHERE {_IN_DAY.format(col="t.completed_at")}) AS closed_tasks,
        count(t.id) FILTER (WHERE {_IN_DAY.format(col="t.completed_at")}
                              AND t.completed_at <= {SLA_DUE}) AS sla_met,
        count(t.id) FILTER (WHERE {_IN_DAY.format(col=SLA_DUE)}
                              AND (t.completed_at IS NULL OR t.completed_at > {SLA_DUE}))
            AS sla_breached
    FROM scope s LEFT JOIN litigation_tasks t ON t.tenant_id = s.id
    GROUP BY s.id, s.day
),
taken AS (
    INSERT INTO litigation_snapshots (tenant_id, day, taken_at, open_tasks, overdue_tasks,
                                      closed_tasks, sla_met, sla_breached, sla_compliance_pct)
    SELECT tenant_id, day, {NOW}, open_tasks, overdue_tasks, closed_tasks, sla_met, sla_breached,
           CASE WHEN sla_met + sla_breached > 0
                THEN round(100.0 * sla_met / (sla_met + sla_breached), 2) END
    FROM figures
    ON CONFLICT (tenant_id, day) DO NOTHING
    RETURNING *
),
announced AS MATERIALIZED (
    SELECT t.*, gen_random_uuid() AS event_id, jsonb_build_object(
        'tenant_id', t.tenant_id, 'day', t.day, 'open_tasks', t.open_tasks,
        'overdue_tasks', t.overdue_tasks, 'closed_tasks', t.closed_tasks,
        'sla_met', t.sla_met, 'sla_breached', t.sla_breached,
        'sla_compliance_pct', t.sla_compliance_pct) AS meta
    FROM taken t
),
{_ANNOUNCE}
SELECT * FROM announced ORDER BY tenant_id"""
)


async def daily_snapshot(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Store each tenant's figures for its local day, once per tenant and day."""
    result = await conn.execute(SNAPSHOT, bind(ctx))
    rows = [
        {
            "tenant_id": r.tenant_id,
            "day": r.day.isoformat(),
            "open_tasks": r.open_tasks,
            "overdue_tasks": r.overdue_tasks,
            "closed_tasks": r.closed_tasks,
            "sla_met": r.sla_met,
            "sla_breached": r.sla_breached,
            "sla_compliance_pct": r.sla_compliance_pct,
        }
        for r in result
    ]
    return JobResult(len(rows), rows)


class HealthParams(BaseModel):
    model_config = {"extra": "forbid"}

    job_prefix: str = Field(
        default="litigation.", max_length=200, description="check runs of jobs named like this"
    )
    recipient: str = Field(
        default="automation-ops", min_length=1, max_length=128, description="who is alerted"
    )


UNHEALTHY = "litigation.automation.unhealthy"
_LOGGED = log_rows("rows", entity_type="job_run", event_type=UNHEALTHY, entity_id="run_id")
_ALERTED = notification_rows(
    "summary", channel="'email'", recipient="recipient", template=f"'{UNHEALTHY}'", data="data"
)

HEALTH_CHECK = sa.text(
    f"""WITH bad AS (
    SELECT r.id, r.job, r.slot, r.status, r.error
    FROM job_runs r
    WHERE r.status IN ('failed', 'missed') AND r.slot <= {NOW}
      AND starts_with(r.job, CAST(:job_prefix AS text))
      AND NOT EXISTS (SELECT 1 FROM litigation_health_flags f WHERE f.run_id = r.id)
),
flagged AS (
    INSERT INTO litigation_health_flags (run_id, job, slot, status, flagged_at)
    SELECT id, job, slot, status, {NOW} FROM bad
    ON CONFLICT (run_id) DO NOTHING
    RETURNING run_id, job, slot, status
),
rows AS MATERIALIZED (
    SELECT f.*, b.error, gen_random_uuid() AS event_id, jsonb_build_object(
        'run_id', f.run_id, 'job', f.job, 'slot', f.slot, 'status', f.status,
        'error', b.error) AS meta
    FROM flagged f JOIN bad b ON b.id = f.run_id
),
{_LOGGED},
summary AS (
    SELECT CAST(:recipient AS text) AS recipient,
           jsonb_build_object('count', count(*), 'runs', jsonb_agg(meta ORDER BY run_id)) AS data
    FROM rows HAVING count(*) > 0
),
{_ALERTED}
SELECT run_id, job, slot, status, error FROM rows ORDER BY run_id"""
)


def _run_row(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "job": row.job,
        "slot": row.slot.isoformat(),
        "status": row.status,
        "error": row.error,
    }


async def automation_health(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Report failed or missed runs of the litigation jobs, each run once, in one alert."""
    params = ctx.params
    assert isinstance(params, HealthParams)
    result = await conn.execute(
        HEALTH_CHECK, bind(ctx, job_prefix=params.job_prefix, recipient=params.recipient)
    )
    rows = [_run_row(r) for r in result]
    return JobResult(len(rows), rows)
