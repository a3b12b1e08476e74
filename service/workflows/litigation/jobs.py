"""Litigation jobs: SLA and overdue check, hearing reminders and deadline alerts.

Each statement reads and changes one tenant's rows when the run has a scope (the
fanned-out schedules: one per tenant, at the tenant's local time) or a
``tenant_id`` parameter; a manual run without either covers every tenant, each
by its own timezone. Local days are computed in SQL from the tenant's IANA zone,
the same rule as :func:`rules.window_end`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.litigation import LITIGATION_OUTBOUND_TOPIC
from service.engine import sql
from service.engine.sql import log_rows, notification_rows, outbox_rows
from service.engine.workflow import JobContext, JobResult, Scope
from service.workflows.litigation.tables import tenants

NOW = "CAST(:now AS timestamptz)"
TENANT = "(CAST(:tenant AS text) IS NULL OR {col} = CAST(:tenant AS text))"
ENTITY = "tenant_id || '/' || id"
SLA_DUE = "t.created_at + make_interval(hours => t.sla_hours)"


class TenantParams(BaseModel):
    model_config = {"extra": "forbid"}

    tenant_id: str | None = Field(
        default=None, max_length=128, description="only this tenant (scheduled runs: the scope)"
    )


_AHEAD = "local days after today that the run looks ahead (0: today only)"


class WindowParams(TenantParams):
    days_ahead: int = Field(default=1, ge=0, le=30, description=_AHEAD)


class DeadlineParams(WindowParams):
    days_ahead: int = Field(default=2, ge=0, le=30, description=_AHEAD)


async def tenant_scopes(conn: AsyncConnection) -> list[Scope]:
    """One scope per tenant, in the tenant's own timezone."""
    rows = await conn.execute(sa.select(tenants.c.id, tenants.c.timezone).order_by(tenants.c.id))
    return [Scope(row.id, row.timezone) for row in rows]


def tenant_of(ctx: JobContext) -> str | None:
    """The run's tenant: its scope, else the ``tenant_id`` parameter, else None (all)."""
    if ctx.scope is not None:
        return ctx.scope
    return getattr(ctx.params, "tenant_id", None)


def bind(ctx: JobContext, **extra: Any) -> dict[str, Any]:
    """The parameters every job statement binds (see service.engine.sql)."""
    return sql.bind(ctx, LITIGATION_OUTBOUND_TOPIC, tenant=tenant_of(ctx), **extra)


def _flag_ctes(kind: str, event_type: str) -> str:
    """Log, announce and notify one kind of breach, for the rows of CTE ``kind``."""
    return ",\n".join(
        [
            log_rows(
                kind,
                entity_type="litigation_task",
                event_type=event_type,
                entity_id=ENTITY,
                name=f"{kind}_logged",
            ),
            outbox_rows(
                kind, event_type=event_type, key="case_id", subject=ENTITY, name=f"{kind}_queued"
            ),
            notification_rows(
                kind,
                channel="'email'",
                recipient="assignee_id",
                template=f"'{event_type}'",
                data="meta || jsonb_build_object('title', title)",
                name=f"{kind}_notified",
            ),
        ]
    )


def _breach_rows(flag: str) -> str:
    return f"""{flag} AS MATERIALIZED (
    SELECT f.*, gen_random_uuid() AS event_id, jsonb_build_object(
        'tenant_id', f.tenant_id, 'case_id', f.case_id, 'task_id', f.id,
        'assignee_id', f.assignee_id, 'due_at', f.due_at, 'sla_due_at', f.sla_due_at) AS meta
    FROM flagged f WHERE f.{flag}
)"""


# Candidates are locked so that a completion arriving at the same moment either wins
# (the task is no longer open) or is flagged first; either way each flag is set once.
SLA_CHECK = sa.text(
    f"""WITH candidates AS (
    SELECT t.tenant_id, t.id,
           t.sla_breached_at IS NULL AND {SLA_DUE} <= {NOW} AS sla,
           t.overdue_at IS NULL AND t.due_at <= {NOW} AS overdue
    FROM litigation_tasks t
    WHERE t.status = 'open' AND {TENANT.format(col="t.tenant_id")}
      AND ((t.sla_breached_at IS NULL AND {SLA_DUE} <= {NOW})
           OR (t.overdue_at IS NULL AND t.due_at <= {NOW}))
    FOR UPDATE
),
flagged AS (
    UPDATE litigation_tasks t
    SET sla_breached_at = CASE WHEN c.sla THEN {NOW} ELSE t.sla_breached_at END,
        overdue_at = CASE WHEN c.overdue THEN {NOW} ELSE t.overdue_at END
    FROM candidates c
    WHERE t.tenant_id = c.tenant_id AND t.id = c.id
    RETURNING t.tenant_id, t.id, t.case_id, t.title, t.assignee_id, t.due_at,
              {SLA_DUE} AS sla_due_at, c.sla, c.overdue
),
{_breach_rows("sla")},
{_breach_rows("overdue")},
{_flag_ctes("sla", "litigation.task.sla_breached")},
{_flag_ctes("overdue", "litigation.task.overdue")}
SELECT tenant_id, id, case_id, assignee_id, sla, overdue FROM flagged ORDER BY tenant_id, id"""
)


async def sla_check(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Flag open tasks past their SLA or due date; each flag is set, logged and alerted once."""
    result = await conn.execute(SLA_CHECK, bind(ctx))
    rows = [
        {
            "tenant_id": r.tenant_id,
            "task_id": r.id,
            "case_id": r.case_id,
            "assignee_id": r.assignee_id,
            "sla_breached": r.sla,
            "overdue": r.overdue,
        }
        for r in result
    ]
    return JobResult(len(rows), rows)


def _window(alias: str, column: str) -> str:
    """``column`` falls before the end of the local day ``:days_ahead`` days from today."""
    local_today = f"date_trunc('day', {NOW} AT TIME ZONE {alias}.timezone)"
    end = f"({local_today} + make_interval(days => :days_ahead + 1)) AT TIME ZONE {alias}.timezone"
    return f"{column} < {end}"


def _remind(entity: str, table: str, time_col: str, ready: str, stamp: str, extra: str) -> str:
    """Stamp due rows of one tenant scope, log each, and notify the case owner."""
    event_type = f"litigation.{entity}.{stamp.removesuffix('_at')}"
    logged = log_rows(
        "rows", entity_type=f"litigation_{entity}", event_type=event_type, entity_id=ENTITY
    )
    notified = notification_rows(
        "rows", channel="'email'", recipient="owner_id", template=f"'{event_type}'", data="meta"
    )
    return f"""WITH scope AS (
    SELECT id, timezone FROM litigation_tenants WHERE {TENANT.format(col="id")}
),
due AS (
    SELECT x.tenant_id, x.id
    FROM {table} x JOIN scope s ON s.id = x.tenant_id
    WHERE {ready} AND {_window("s", f"x.{time_col}")}
    FOR UPDATE OF x
),
stamped AS (
    UPDATE {table} x SET {stamp} = {NOW}
    FROM due d WHERE x.tenant_id = d.tenant_id AND x.id = d.id
    RETURNING x.*
),
rows AS MATERIALIZED (
    SELECT r.tenant_id, r.id, r.case_id, r.{time_col} AS at, c.owner_id, s.timezone,
           gen_random_uuid() AS event_id,
           jsonb_build_object(
               'tenant_id', r.tenant_id, 'case_id', r.case_id, '{entity}_id', r.id,
               'case_title', c.title, '{time_col}', r.{time_col}, 'timezone', s.timezone,
               'local_time', to_char(r.{time_col} AT TIME ZONE s.timezone, 'YYYY-MM-DD HH24:MI'),
               {extra}) AS meta
    FROM stamped r
    JOIN litigation_cases c ON c.tenant_id = r.tenant_id AND c.id = r.case_id
    JOIN scope s ON s.id = r.tenant_id
),
{logged},
{notified}
SELECT tenant_id, id, case_id, at, owner_id, timezone FROM rows ORDER BY tenant_id, at, id"""


HEARING_REMINDERS = sa.text(
    _remind(
        "hearing",
        "litigation_hearings",
        "starts_at",
        f"x.status = 'scheduled' AND x.reminded_at IS NULL AND x.starts_at >= {NOW}",
        "reminded_at",
        "'location', r.location",
    )
)

DEADLINE_ALERTS = sa.text(
    _remind(
        "deadline",
        "litigation_deadlines",
        "due_at",
        "x.status = 'open' AND x.alerted_at IS NULL",
        "alerted_at",
        f"'title', r.title, 'missed', r.due_at <= {NOW}",
    )
)


async def _run_reminders(
    conn: AsyncConnection, ctx: JobContext, stmt: sa.TextClause, key: str
) -> JobResult:
    params = ctx.params
    assert isinstance(params, WindowParams)
    result = await conn.execute(stmt, bind(ctx, days_ahead=params.days_ahead))
    rows = [
        {
            "tenant_id": r.tenant_id,
            key: r.id,
            "case_id": r.case_id,
            "at": r.at.isoformat(),
            "owner_id": r.owner_id,
            "timezone": r.timezone,
        }
        for r in result
    ]
    return JobResult(len(rows), rows)


async def hearing_reminders(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Remind case owners, once per hearing, of hearings from now to the end of tomorrow."""
    return await _run_reminders(conn, ctx, HEARING_REMINDERS, "hearing_id")


async def deadline_alerts(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Alert case owners, once per deadline, of open deadlines due within ``days_ahead``."""
    return await _run_reminders(conn, ctx, DEADLINE_ALERTS, "deadline_id")
