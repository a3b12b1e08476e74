"""A failing job is retried through the jobs.commands retry tiers, then reported and paused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.engine import runqueue, topics
from service.engine.workflow import Job, JobContext, JobResult
from tests.helpers import wait_for
from tests.integration.jobs.support import roles, runs

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


async def test_failure_is_retried_via_the_tiers_then_failed_with_a_notification(
    settings: Settings, engine: AsyncEngine
) -> None:
    attempts: list[int] = []

    async def boom(conn: AsyncConnection, ctx: JobContext) -> JobResult:
        await conn.execute(
            sa.text(
                "INSERT INTO event_log (occurred_at, actor, entity_type, "
                "entity_id, event_type) VALUES (now(), 'x', 'x', 'x', 'x')"
            )
        )
        attempts.append(ctx.run_id or 0)
        raise RuntimeError("the upstream API said no")

    job = Job(
        "test.boom", "0 3 * * *", run=boom, description="", retry_delays_s=(0.2, 0.3),
        pause_on_failure=True,
    )  # fmt: skip
    settings = settings.with_overrides(retry_delays_s=[0.2, 0.3])  # two tiers: fewer to join
    async with roles(settings, engine, [job]) as r:
        await r.relay()
        await r.workers(1)
        async with engine.begin() as conn:
            run_id = await runqueue.enqueue(conn, job=job.name, slot=SLOT, trigger="scheduled")

        async def finally_failed() -> bool:
            (row,) = await runs(engine, job.name)
            return row.status == "failed" and row.attempt == 3 and row.next_attempt_at is None

        await wait_for(finally_failed, timeout=60, what="three attempts, then failed")

    (row,) = await runs(engine, job.name)
    assert row.id == run_id and "the upstream API said no" in row.error
    assert attempts == [run_id] * 3
    async with engine.connect() as conn:
        outbox = list(await conn.execute(sa.text("SELECT * FROM outbox ORDER BY id")))
        log = list(await conn.execute(sa.text(
            "SELECT event_type, metadata FROM event_log WHERE entity_type <> 'x' ORDER BY id"
        )))  # fmt: skip
        paused = (await conn.execute(sa.text("SELECT actor FROM job_pauses"))).scalar()
        effects = (await conn.execute(sa.text("SELECT count(*) FROM event_log "
                                               "WHERE entity_type = 'x'"))).scalar()  # fmt: skip
    retries = [o for o in outbox if o.payload["type"] == "job.retry_requested"]
    assert [o.topic for o in retries] == [
        topics.retry(settings, "jobs.commands", 1),
        topics.retry(settings, "jobs.commands", 2),
    ]
    assert [o.payload["data"]["attempt"] for o in retries] == [2, 3]
    assert [o.headers["x-attempt"] for o in retries] == ["1", "2"]
    assert len({o.event_id for o in retries}) == 2  # fresh ids: the inbox keeps both
    (alert,) = [o for o in outbox if o.payload["type"] == "notification.requested"]
    assert alert.topic == settings.topic("notifications.out")
    assert alert.payload["data"]["template"] == "job.failed"
    assert alert.payload["data"]["data"]["attempt"] == 3
    assert [e.event_type for e in log] == [
        "job.attempt_failed",
        "job.attempt_failed",
        "job.failed",
        "job.paused",
    ]
    assert paused == "system"  # pause_on_failure
    assert effects == 0  # each failed attempt's own writes were rolled back
