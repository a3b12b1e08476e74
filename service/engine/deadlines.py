"""Deadlines: a slot not succeeded by ``slot + deadline_s`` raises ``job.overdue``, once.

The clock checks each schedule's slots in order and remembers the last one checked
(``schedules.deadline_checked``) in the same transaction as the alerts, whose ids
are derived from the slot: a slot is judged once, and a repeated judgment could
not announce twice anyway. A slot that never got a run (missed, or its tick is
stuck) is overdue too: a missed run is loud.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.db.tables import job_runs, schedules
from service.engine import records
from service.engine.metrics import JOB_OVERDUE

if TYPE_CHECKING:
    from service.engine.clock import Wanted

#: Outcomes that meet a deadline: done, or deliberately not run beside another run.
ON_TIME = ("succeeded", "skipped")
MAX_SLOTS = 1000


async def check(
    engine: AsyncEngine,
    settings: Settings,
    w: Wanted,
    checked: datetime,
    last: datetime,
    now: datetime,
) -> list[datetime]:
    """Alert for every overdue slot in (checked, min(last, now - deadline)]; return them."""
    assert w.job.deadline_s is not None
    limit = min(last, now - timedelta(seconds=w.job.deadline_s))
    slots = list(islice(w.schedule.slots(checked, limit), MAX_SLOTS))
    if not slots:
        return []
    async with engine.begin() as conn:
        rows = await conn.execute(
            sa.select(job_runs.c.id, job_runs.c.slot, job_runs.c.status).where(
                job_runs.c.job == w.job.name,
                job_runs.c.scope == w.scope,
                job_runs.c.slot.in_(slots),
            )
        )
        runs = {row.slot: row for row in rows}
        overdue = [s for s in slots if s not in runs or runs[s].status not in ON_TIME]
        logs, alerts = [], []
        for slot in overdue:
            run = runs.get(slot)
            facts = {
                "job": w.job.name,
                "scope": w.scope or None,
                "slot": slot.isoformat(),
                "deadline_s": w.job.deadline_s,
                "status": run.status if run is not None else "no run",
                "run_id": run.id if run is not None else None,
            }
            logs.append(
                records.log_row(
                    entity_type="job",
                    entity_id=w.key,
                    event_type="job.overdue",
                    actor="clock",
                    metadata=facts,
                )
            )
            alerts.append(
                records.alert(
                    settings,
                    event_id=records.derived_id("overdue", w.job.name, w.scope, slot.isoformat()),
                    template="job.overdue",
                    subject=w.key,
                    data=facts,
                )
            )
        await records.write(conn, logs, alerts)
        late_ids = [runs[s].id for s in overdue if s in runs]
        if late_ids:
            await conn.execute(
                job_runs.update()
                .where(job_runs.c.id.in_(late_ids))
                .values(overdue_at=sa.func.now())
            )
        await conn.execute(
            schedules.update()
            .where(schedules.c.job == w.job.name, schedules.c.scope == w.scope)
            .values(deadline_checked=slots[-1])
        )
    if overdue:
        JOB_OVERDUE.labels(job=w.job.name).inc(len(overdue))
    return overdue
