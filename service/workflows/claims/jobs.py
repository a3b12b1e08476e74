"""Claims jobs: release claims whose review was orphaned, in one set-based statement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from service.config import Settings
from service.engine.sql import bind, log_and_outbox
from service.engine.workflow import Attention, JobContext, JobResult

OUT_TOPIC = "claims.out"
TIMEOUT_RELEASED = "claim.timeout_released"

# Candidates are locked (FOR UPDATE re-checks the condition against the latest row
# version), so a reviewer acting at the same moment either wins or is released.
_CANDIDATES = """
candidates AS (
    SELECT c.id, c.task_id, c.reviewer_id, c.updated_at AS last_update
    FROM claims c
    WHERE c.status = 'under_review'
      AND c.updated_at <= CAST(:now AS timestamptz) - make_interval(days => :threshold)
    {lock}
)"""

_ENRICH = """
SELECT o.id, o.task_id, o.reviewer_id, o.last_update,
       t.title AS task_title, m.name AS reviewer_name,
       floor(extract(epoch FROM (CAST(:now AS timestamptz) - o.last_update)) / 86400)::int
           AS days_orphaned
FROM {source} o
LEFT JOIN tasks t ON t.id = o.task_id
LEFT JOIN members m ON m.id = o.reviewer_id
"""

PREVIEW = sa.text(
    "WITH "
    + _CANDIDATES.format(lock="")
    + _ENRICH.format(source="candidates")
    + " ORDER BY o.last_update, o.id LIMIT :limit OFFSET :offset"
)

COUNT = sa.text(
    "SELECT count(*) FROM claims WHERE status = 'under_review' "
    "AND updated_at <= CAST(:now AS timestamptz) - make_interval(days => :threshold)"
)

RELEASE = sa.text(
    "WITH "
    + _CANDIDATES.format(lock="FOR UPDATE")
    + """,
released AS (
    UPDATE claims c
    SET status = 'submitted', reviewer_id = NULL, review_started_at = NULL,
        updated_at = CAST(:now AS timestamptz), version = c.version + 1
    FROM candidates o
    WHERE c.id = o.id
    RETURNING c.id, c.task_id, o.reviewer_id, o.last_update
),
enriched AS MATERIALIZED (
    SELECT e.*, gen_random_uuid() AS event_id FROM ("""
    + _ENRICH.format(source="released")
    + """) e
),
metadata AS (
    SELECT e.*, jsonb_build_object(
        'claim_id', e.id, 'task_id', e.task_id, 'reviewer_id', e.reviewer_id,
        'days_orphaned', e.days_orphaned, 'timeout_threshold_days', :threshold,
        'admin_id', CAST(:admin_id AS text), 'trigger', CAST(:trigger AS text)) AS meta
    FROM enriched e
),
"""
    + log_and_outbox("metadata", entity_type="claim", event_type=TIMEOUT_RELEASED, entity_id="id")
    + """
SELECT id, task_id, task_title, reviewer_id, reviewer_name, days_orphaned, last_update
FROM enriched ORDER BY last_update, id
"""
)


class ReleaseParams(BaseModel):
    model_config = {"extra": "forbid"}

    threshold_days: int | None = Field(
        default=None, ge=1, le=3650, description="days under review before a claim is orphaned"
    )


def _threshold(ctx: JobContext) -> int:
    params = ctx.params
    assert isinstance(params, ReleaseParams)
    return params.threshold_days or ctx.settings.orphan_threshold_days


def _row(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "claim_id": row.id,
        "task_id": row.task_id,
        "task_title": row.task_title,
        "reviewer_id": row.reviewer_id,
        "reviewer_name": row.reviewer_name,
        "days_orphaned": row.days_orphaned,
        "last_update": row.last_update.isoformat(),
    }


async def preview_orphaned(
    conn: AsyncConnection, ctx: JobContext, limit: int | None = None, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    """Count and list (oldest first) the claims a release would change now."""
    args = {"now": ctx.now, "threshold": _threshold(ctx)}
    total = (await conn.execute(COUNT, args)).scalar_one()
    rows = await conn.execute(PREVIEW, {**args, "limit": limit, "offset": offset})
    return total, [_row(r) for r in rows]


async def release_orphaned(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Move every orphaned claim back to ``submitted``; log and announce each one.

    No trust score or other penalty is touched: an orphaned review is the
    reviewer's lapse, not the claimant's, and the release only frees the claim.
    """
    if ctx.dry_run:
        total, rows = await preview_orphaned(conn, ctx)
        return JobResult(total, rows)
    # One statement over possibly a million rows: give its sorts and CTEs room in memory.
    await conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    result = await conn.execute(
        RELEASE,
        bind(
            ctx,
            OUT_TOPIC,
            threshold=_threshold(ctx),
            admin_id=ctx.actor if ctx.trigger == "manual" else None,
            trigger=ctx.trigger,
        ),
    )
    rows = [_row(r) for r in result]
    return JobResult(len(rows), rows)


async def attention(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Attention]:
    """Orphaned claims waiting for the release job, for the dashboard's badges."""
    args = {"now": now, "threshold": settings.orphan_threshold_days}
    count = (await conn.execute(COUNT, args)).scalar_one()
    return [Attention("orphaned claims", int(count), job="claims.release-orphaned")]
