"""Maintenance jobs: inbox and outbox pruning by retention, and the daily health check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.app import Runtime
from service.config import Settings
from tests.integration.jobs.support import scalar

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)


async def execute(engine: AsyncEngine, sql: str, rows: list[dict[str, object]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(sql), rows)


async def test_prune_inbox_deletes_only_ids_past_retention(
    settings: Settings, engine: AsyncEngine
) -> None:
    await execute(
        engine,
        "INSERT INTO processed_messages (consumer, message_id, processed_at) VALUES (:c, :m, :t)",
        [{"c": "claims", "m": f"m{d}", "t": NOW - timedelta(days=d)} for d in (1, 13, 15, 40)],
    )
    rt = Runtime(settings.with_overrides(inbox_retention_days=14), engine)

    preview = await rt.run_job("engine.prune-inbox", now=NOW, dry_run=True)
    assert preview.result is not None and preview.result.affected == 2
    assert await scalar(engine, "SELECT count(*) FROM processed_messages") == 4

    done = await rt.run_job("engine.prune-inbox", now=NOW, trigger="scheduled", actor=None)

    assert done.status == "succeeded" and done.result is not None and done.result.affected == 2
    left = await scalar(engine, "SELECT array_agg(message_id ORDER BY 1) FROM processed_messages")
    assert left == ["m1", "m13"]
    logged = await scalar(
        engine, "SELECT metadata FROM event_log WHERE event_type = 'maintenance.pruned'"
    )
    assert logged["table"] == "processed_messages" and logged["deleted"] == 2


async def test_prune_outbox_keeps_unpublished_and_recent_rows(
    settings: Settings, engine: AsyncEngine
) -> None:
    rows = [
        ("old-published", NOW - timedelta(days=9), NOW - timedelta(days=8)),
        ("new-published", NOW - timedelta(days=2), NOW - timedelta(days=1)),
        ("old-unpublished", NOW - timedelta(days=30), None),
    ]
    await execute(
        engine,
        "INSERT INTO outbox (event_id, topic, key, payload, created_at, published_at) "
        "VALUES (gen_random_uuid(), 't', :k, '{}', :c, :p)",
        [{"k": k, "c": c, "p": p} for k, c, p in rows],
    )
    rt = Runtime(settings.with_overrides(outbox_retention_days=7), engine)

    done = await rt.run_job("engine.prune-outbox", now=NOW, trigger="scheduled")

    assert done.result is not None and done.result.affected == 1
    left = await scalar(engine, "SELECT array_agg(key ORDER BY key) FROM outbox")
    assert left == ["new-published", "old-unpublished"]


async def test_health_check_reports_failed_and_missed_runs_of_the_last_day(
    settings: Settings, engine: AsyncEngine
) -> None:
    at = NOW.replace(hour=7, minute=0)
    runs = [
        ("a", at - timedelta(hours=2), "failed", None),
        ("b", at - timedelta(hours=3), "failed", at + timedelta(minutes=5)),  # retry on its way
        ("c", at - timedelta(hours=5), "missed", None),
        ("d", at - timedelta(hours=1), "succeeded", None),
        ("e", at - timedelta(hours=30), "failed", None),  # before the window
    ]
    await execute(
        engine,
        "INSERT INTO job_runs (job, slot, trigger, status, error, next_attempt_at) "
        "VALUES (:j, :s, 'scheduled', :st, 'boom', :n)",
        [{"j": j, "s": s, "st": st, "n": n} for j, s, st, n in runs],
    )
    rt = Runtime(settings, engine)

    done = await rt.run_job("engine.health-check", now=at, trigger="scheduled")

    assert done.result is not None and [r["job"] for r in done.result.rows] == ["c", "a"]
    report = await scalar(
        engine,
        "SELECT payload->'data' FROM outbox WHERE payload->>'type' = 'notification.requested'",
    )
    assert report["template"] == "job.health" and report["recipient"] == "ops"
    assert (report["data"]["failed"], report["data"]["missed"]) == (1, 1)
    assert {r["job"] for r in report["data"]["runs"]} == {"a", "c"}

    quiet = await rt.run_job("engine.health-check", now=at + timedelta(days=3), trigger="scheduled")
    assert quiet.result is not None and quiet.result.affected == 0
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 1  # nothing to report, no noise
