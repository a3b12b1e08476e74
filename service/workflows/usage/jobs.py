"""Usage jobs: period rollover archives every counter whose period has ended.

A new period needs no job: its counter is created at zero by the first event
that falls in it (by event time), with its thresholds armed. The rollover moves
ended periods to the archive, so the open-counters table stays small, and
announces each closed period with its final value.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.usage import USAGE_OUTBOUND_TOPIC
from service.engine import sql
from service.engine.sql import log_rows, outbox_rows
from service.engine.workflow import JobContext, JobResult

NOW = "CAST(:now AS timestamptz)"
CLOSED = "usage.period.closed"

# A late event may recreate an archived period's counter; the next rollover adds
# it to the archive (and keeps the thresholds already fired).
ROLLOVER = sa.text(
    f"""WITH closed AS (
    DELETE FROM usage_counters c WHERE c.period_end <= {NOW} RETURNING c.*
),
archived AS (
    INSERT INTO usage_counters_archive AS a (organization_id, metric, period_start, period,
        period_end, value, updated_at, warned_at, limited_at, archived_at)
    SELECT organization_id, metric, period_start, period, period_end, value, updated_at,
           warned_at, limited_at, {NOW}
    FROM closed
    ORDER BY organization_id, metric, period_start
    ON CONFLICT (organization_id, metric, period_start) DO UPDATE
    SET value = a.value + excluded.value,
        updated_at = GREATEST(a.updated_at, excluded.updated_at),
        warned_at = COALESCE(a.warned_at, excluded.warned_at),
        limited_at = COALESCE(a.limited_at, excluded.limited_at),
        archived_at = excluded.archived_at
    RETURNING a.*
),
rows AS MATERIALIZED (
    SELECT a.*, gen_random_uuid() AS event_id,
           a.organization_id || '/' || a.metric || '/'
               || to_char(a.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') AS counter,
           jsonb_build_object(
               'organization_id', a.organization_id, 'metric', a.metric, 'period', a.period,
               'period_start', a.period_start, 'period_end', a.period_end, 'value', a.value)
               AS meta
    FROM archived a
),
{log_rows("rows", entity_type="usage_counter", event_type=CLOSED, entity_id="counter")},
{outbox_rows("rows", event_type=CLOSED, key="organization_id", subject="counter")}
SELECT organization_id, metric, period, period_start, period_end, value
FROM rows ORDER BY organization_id, metric, period_start"""
)


async def rollover(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Archive and announce every counter whose period ended at or before the slot."""
    result = await conn.execute(
        ROLLOVER,
        sql.bind(ctx, USAGE_OUTBOUND_TOPIC),
    )
    rows = [
        {
            "organization_id": r.organization_id,
            "metric": r.metric,
            "period": r.period,
            "period_start": r.period_start.isoformat(),
            "period_end": r.period_end.isoformat(),
            "value": r.value,
        }
        for r in result
    ]
    return JobResult(len(rows), rows)
