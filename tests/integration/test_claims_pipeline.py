"""Events published with aiokafka reach the database through the real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import (
    ClaimApproved,
    ClaimReviewStarted,
    ClaimSubmitted,
    MemberUpserted,
    TaskUpserted,
)
from service.app import Runtime
from service.config import Settings
from service.engine.worker import Worker
from tests.helpers import event, publish, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def worker(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Worker]:
    w = Worker(settings, engine, Runtime(settings, engine).workflows)
    await w.start()
    yield w
    await w.stop()


async def _claim(engine: AsyncEngine, claim_id: str) -> sa.Row | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.text("SELECT * FROM claims WHERE id = :id"), {"id": claim_id})
        ).first()


async def _count(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text(sql), params)).scalar_one())


async def test_events_reach_the_database(
    settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    t0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
    await publish(
        settings,
        "claims.events",
        [
            event(MemberUpserted, t0, member_id="m1", name="Ada"),
            event(TaskUpserted, t0, task_id="t1", title="Write docs"),
            event(ClaimSubmitted, t0, claim_id="c1", task_id="t1", member_id="m2"),
            event(ClaimReviewStarted, t0 + timedelta(hours=1), claim_id="c1", reviewer_id="m1"),
            event(ClaimApproved, t0 + timedelta(hours=2), claim_id="c1", reviewer_id="m1"),
        ],
    )

    async def approved() -> bool:
        row = await _claim(engine, "c1")
        return row is not None and row.status == "approved"

    await wait_for(approved, what="claim c1 approved")
    row = await _claim(engine, "c1")
    assert row is not None
    assert row.reviewer_id is None
    assert row.updated_at == t0 + timedelta(hours=2)  # the event's own time, not ours
    logged = await _count(engine, "SELECT count(*) FROM event_log WHERE entity_id = 'c1'")
    assert logged == 3
    assert await _count(engine, "SELECT count(*) FROM members WHERE name = 'Ada'") == 1


async def test_duplicate_delivery_changes_state_once(
    settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    t0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
    submitted = event(ClaimSubmitted, t0, claim_id="c2", task_id="t1", member_id="m2")
    started = event(ClaimReviewStarted, t0, claim_id="c2", reviewer_id="r1")
    await publish(settings, "claims.events", [submitted, started, submitted, started])
    marker = event(ClaimSubmitted, t0, claim_id="c3", task_id="t1", member_id="m2")
    await publish(settings, "claims.events", [marker], key="c2")  # same partition, after them

    async def marker_seen() -> bool:
        return await _claim(engine, "c3") is not None

    await wait_for(marker_seen, what="marker claim")
    row = await _claim(engine, "c2")
    assert row is not None and row.status == "under_review" and row.version == 2
    assert await _count(engine, "SELECT count(*) FROM event_log WHERE entity_id = 'c2'") == 2
    assert await _count(engine, "SELECT count(*) FROM processed_messages") == 3
    assert worker.outcomes["duplicate"] == 2
