"""release-orphaned-claims: set-based, complete metadata, relayed to claims.out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.app import Runtime
from service.config import Settings
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.outbox import Relay
from tests.helpers import consume_all, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
JOB = "claims.release-orphaned"


async def seed(engine: AsyncEngine, claims: list[tuple[str, str | None, timedelta]]) -> None:
    """claims: (id, reviewer or None for submitted, age of last update)."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO members (id, name) VALUES ('r1', 'Grace')"))
        await conn.execute(sa.text("INSERT INTO tasks (id, title) VALUES ('t1', 'Docs')"))
        await conn.execute(
            sa.text(
                "INSERT INTO claims (id, task_id, member_id, status, reviewer_id, submitted_at, "
                "review_started_at, updated_at) VALUES (:id, 't1', 'm1', :status, :reviewer, "
                ":at, :started, :at)"
            ),
            [
                {
                    "id": cid,
                    "status": "under_review" if reviewer else "submitted",
                    "reviewer": reviewer,
                    "at": NOW - age,
                    "started": NOW - age if reviewer else None,
                }
                for cid, reviewer, age in claims
            ],
        )


async def rows(engine: AsyncEngine, sql: str) -> list[sa.Row]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql)))


async def test_release_1000_claims_logs_and_relays_each(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(
        engine,
        [(f"c{i:04}", "r1", timedelta(days=8 + i % 10, minutes=i)) for i in range(1000)]
        + [("young", "r1", timedelta(days=6)), ("free", None, timedelta(days=30))],
    )
    rt = Runtime(settings, engine)

    outcome = await rt.run_job(JOB, now=NOW, actor="token:alice")

    assert outcome.status == "succeeded" and outcome.result is not None
    assert outcome.result.affected == 1000
    released = outcome.result.rows
    assert len(released) == 1000
    ages = [r["days_orphaned"] for r in released]
    assert ages == sorted(ages, reverse=True)  # oldest first
    assert released[0]["task_title"] == "Docs" and released[0]["reviewer_name"] == "Grace"

    claims = {r.id: r for r in await rows(engine, "SELECT * FROM claims")}
    assert claims["young"].status == "under_review"  # updated 6 days ago: not orphaned
    assert claims["free"].status == "submitted" and claims["free"].version == 1
    assert all(
        claims[r["claim_id"]].status == "submitted" and claims[r["claim_id"]].reviewer_id is None
        for r in released
    )

    log = await rows(engine, "SELECT * FROM event_log WHERE event_type = 'claim.timeout_released'")
    assert len(log) == 1000
    by_claim = {r.entity_id: r for r in log}
    c0 = by_claim["c0000"]
    assert c0.metadata == {
        "claim_id": "c0000",
        "task_id": "t1",
        "reviewer_id": "r1",
        "days_orphaned": 8,  # measured from the last update before the release
        "timeout_threshold_days": 7,
        "admin_id": "token:alice",
        "trigger": "manual",
    }
    assert c0.actor == "token:alice"
    outbox = await rows(engine, "SELECT * FROM outbox")
    assert len(outbox) == 1000
    assert {r.event_id for r in outbox} == {r.event_id for r in log}
    assert outbox[0].payload["type"] == "claim.timeout_released"

    # and the relay delivers every one of them to claims.out
    topic = settings.topic("claims.out")
    await ensure_topics(settings, [topic])
    publisher = KafkaPublisher(settings)
    await publisher.start()
    stop = asyncio.Event()
    relay = Relay(engine, publisher, settings)
    task = asyncio.create_task(relay.run(stop))
    try:

        async def all_published() -> bool:
            left = await rows(engine, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
            return left[0].n == 0

        await wait_for(all_published, what="outbox drained")
    finally:
        stop.set()
        await task
        await publisher.stop()
    records = await consume_all(settings, topic, 1000)
    payloads = [json.loads(r.value) for r in records]
    assert len(payloads) == 1000
    assert {p["data"]["claim_id"] for p in payloads} == set(by_claim)
    assert all(r.key == json.loads(r.value)["data"]["claim_id"].encode() for r in records)


async def test_dry_run_lists_and_changes_nothing(settings: Settings, engine: AsyncEngine) -> None:
    await seed(engine, [("old", "r1", timedelta(days=9)), ("new", "r1", timedelta(days=2))])
    rt = Runtime(settings, engine)

    outcome = await rt.run_job(JOB, now=NOW, dry_run=True, actor="cli")

    assert outcome.result is not None
    assert [r["claim_id"] for r in outcome.result.rows] == ["old"]
    assert (await rows(engine, "SELECT status FROM claims WHERE id = 'old'"))[0].status == (
        "under_review"
    )
    assert (await rows(engine, "SELECT count(*) AS n FROM event_log"))[0].n == 0
    assert (await rows(engine, "SELECT count(*) AS n FROM job_runs"))[0].n == 0


async def test_threshold_is_a_parameter_and_scheduled_runs_have_no_admin(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, [("c1", "r1", timedelta(days=4)), ("c2", "r1", timedelta(days=2))])
    rt = Runtime(settings, engine)

    outcome = await rt.run_job(
        JOB, now=NOW, params={"threshold_days": 3}, trigger="scheduled", actor=None
    )

    assert outcome.result is not None and outcome.result.affected == 1
    meta = (await rows(engine, "SELECT metadata FROM event_log"))[0].metadata
    assert meta["admin_id"] is None and meta["trigger"] == "scheduled"
    assert meta["timeout_threshold_days"] == 3
    again = await rt.run_job(JOB, now=NOW, params={"threshold_days": 3}, trigger="scheduled")
    assert again.status == "duplicate"  # one run per (job, slot)
