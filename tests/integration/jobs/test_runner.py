"""The executor and the runner on a real database: overlap, timeout, stalled runs, dedupe."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.app import Runtime
from service.config import Settings
from service.engine import runqueue, topics
from service.engine.executor import JobExecutor
from service.engine.joblocks import LOCK_KEY_SQL, LOCK_NAMESPACE, lock_key
from service.engine.workflow import Job, JobContext, JobResult, Workflow
from tests.helpers import wait_for
from tests.integration.jobs.support import (
    effect_slots,
    record_effect,
    recording_job,
    roles,
    runs,
    scalar,
)

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def gated_job(name: str, gate: asyncio.Event, started: asyncio.Event, **options: object) -> Job:
    """A slow job: it starts, then waits for the test to open the gate."""

    async def run(conn: AsyncConnection, ctx: JobContext) -> JobResult:
        started.set()
        await gate.wait()
        return await record_effect(conn, ctx, name)

    return Job(name=name, cron="* * * * *", run=run, description="slow", **options)  # type: ignore[arg-type]


async def queue(engine: AsyncEngine, job: str, slot: datetime, scope: str | None = None) -> int:
    async with engine.begin() as conn:
        run_id = await runqueue.enqueue(conn, job=job, slot=slot, trigger="scheduled", scope=scope)
    assert run_id is not None
    return run_id


async def status_of(engine: AsyncEngine, run_id: int) -> str:
    return str(await scalar(engine, "SELECT status FROM job_runs WHERE id = :id", id=run_id))


async def test_overlap_skip_records_the_next_slot_as_skipped(
    settings: Settings, effects: AsyncEngine
) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    job = gated_job("test.slow", gate, started, overlap="skip")
    rt = Runtime(settings, effects, workflows=[Workflow("t", "service.db.tables", jobs=(job,))])
    now = datetime.now(UTC).replace(microsecond=0)
    async with roles(settings, effects, rt.jobs) as r:
        r.executor()
        first = await queue(effects, job.name, now)
        await asyncio.wait_for(started.wait(), 10)
        second = await queue(effects, job.name, now + timedelta(minutes=1))  # due meanwhile

        async def skipped() -> bool:
            return await status_of(effects, second) == "skipped"

        await wait_for(skipped, what="the next slot skipped")
        manual = await rt.run_job(job.name, actor="alice")  # a manual run is no exception
        assert manual.status == "skipped" and "overlap" in (manual.error or "")
        assert await status_of(effects, first) == "running"
        gate.set()

        async def first_done() -> bool:
            return await status_of(effects, first) == "succeeded"

        await wait_for(first_done, what="the slow run finished")
    assert await effect_slots(effects, job.name) == [now]
    rows = {r.id: r for r in await runs(effects, job.name)}
    assert "overlap" in rows[second].error and rows[second].started_at is None


async def test_late_slots_of_a_skip_job_wait_their_turn_instead(
    settings: Settings, effects: AsyncEngine
) -> None:
    """Caught-up slots from before the running run started are not "beside" it."""
    gate, started = asyncio.Event(), asyncio.Event()
    job = gated_job("test.late", gate, started, overlap="skip")
    async with roles(settings, effects, [job]) as r:
        r.executor()
        slots = [SLOT + timedelta(minutes=m) for m in (0, 15, 30)]
        async with effects.begin() as conn:  # queued together, newest first: run oldest first
            for slot in reversed(slots):
                await runqueue.enqueue(conn, job=job.name, slot=slot, trigger="scheduled")
        await asyncio.wait_for(started.wait(), 10)
        gate.set()

        async def all_done() -> bool:
            return {r.status for r in await runs(effects, job.name)} == {"succeeded"}

        await wait_for(all_done, what="three late slots, one after another")
    rows = await runs(effects, job.name)
    assert await effect_slots(effects, job.name) == slots
    assert sorted(rows, key=lambda r: r.started_at) == rows  # started in slot order
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(rows))


async def test_overlap_queue_runs_the_next_slot_after_the_first(
    settings: Settings, effects: AsyncEngine
) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    job = gated_job("test.queued", gate, started, overlap="queue")
    s = settings.with_overrides(job_poll_s=0.1)
    async with roles(s, effects, [job]) as r:
        r.executor()
        first = await queue(effects, job.name, SLOT)
        await asyncio.wait_for(started.wait(), 10)
        second = await queue(effects, job.name, SLOT + timedelta(minutes=1))

        async def waiting_in_queue() -> bool:  # re-checked at least once, still queued
            return (
                await scalar(
                    effects,
                    "SELECT not_before > created_at + interval '50 ms' FROM job_runs "
                    "WHERE id = :id AND status = 'queued'",
                    id=second,
                )
                is True
            )

        await wait_for(waiting_in_queue, what="the second run waiting")
        gate.set()

        async def both_done() -> bool:
            return {await status_of(effects, first), await status_of(effects, second)} == {
                "succeeded"
            }

        await wait_for(both_done, what="both runs")
    one, two = await runs(effects, job.name)
    assert two.started_at >= one.finished_at  # one after the other, never side by side
    assert await effect_slots(effects, job.name) == [SLOT, SLOT + timedelta(minutes=1)]


async def test_timeout_fails_the_run_and_frees_the_lock(
    settings: Settings, effects: AsyncEngine
) -> None:
    async def sleepy(conn: AsyncConnection, ctx: JobContext) -> JobResult:
        await conn.execute(sa.text("SELECT pg_sleep(30)"))
        return JobResult(0)

    job = Job("test.sleepy", "* * * * *", run=sleepy, description="", timeout_s=0.5)
    rt = Runtime(settings, effects, workflows=[Workflow("t", "service.db.tables", jobs=(job,))])

    outcome = await rt.run_job(job.name, now=SLOT, trigger="scheduled")

    assert outcome.status == "failed" and outcome.error == "timed out after 0.5 s"
    (row,) = await runs(effects, job.name)
    assert row.status == "failed" and row.next_attempt_at is None  # inline runs report, not retry
    held = await scalar(
        effects,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key",
        key=lock_key(job.name, ""),
    )
    assert held == 0
    again = await rt.run_job(job.name, now=SLOT + timedelta(minutes=1), trigger="scheduled")
    assert again.status == "failed"  # it could take the lock again
    alert = await scalar(
        effects,
        "SELECT payload FROM outbox WHERE payload->'data'->>'template' = 'job.failed' LIMIT 1",
    )
    assert alert["data"]["data"]["job"] == job.name


async def test_lock_key_in_sql_matches_python(engine: AsyncEngine) -> None:
    expr = LOCK_KEY_SQL.format(job=":job", scope=":scope")
    for job, scope in [("claims.release-orphaned", ""), ("x", "Europe/Berlin"), ("é", "ü")]:
        assert await scalar(engine, f"SELECT {expr}", job=job, scope=scope) == lock_key(job, scope)


async def test_stalled_runs_are_failed_and_retried_by_policy(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = recording_job("test.stall", "* * * * *", retry_delays_s=(30,))

    async def running_row(scope: str, lock_pid: int, timeout_in: timedelta) -> int:
        async with engine.begin() as conn:
            return int(
                (
                    await conn.execute(
                        sa.text(
                            "INSERT INTO job_runs (job, scope, slot, trigger, status, started_at, "
                            "lock_pid, timeout_at) VALUES ('test.stall', :scope, :slot, "
                            "'scheduled', 'running', now(), :pid, now() + :t) "
                            "RETURNING id"
                        ),
                        {"scope": scope, "slot": SLOT, "pid": lock_pid, "t": timeout_in},
                    )
                ).scalar_one()
            )

    holders = []
    for scope in ("hung", "healthy"):
        conn = await engine.connect()
        key = {"ns": LOCK_NAMESPACE, "key": lock_key("test.stall", scope)}
        assert (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :key)"), key)).scalar()
        pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        await conn.commit()
        holders.append((conn, pid))
    try:
        dead = await running_row("dead", 2_000_000, timedelta(hours=1))  # its backend is gone
        hung = await running_row(
            "hung", holders[0][1], timedelta(seconds=-1)
        )  # holds on, past timeout
        healthy = await running_row("healthy", holders[1][1], timedelta(hours=1))

        recovered = await JobExecutor(engine, [job], settings).recover_stalled()

        assert recovered == 2
        rows = {r.id: r for r in await runs(engine, "test.stall")}
        for run_id in (dead, hung):
            assert rows[run_id].status == "failed" and rows[run_id].error.startswith("stalled")
            assert rows[run_id].next_attempt_at is not None
        assert rows[healthy].status == "running"
        retries = await scalar(
            engine,
            "SELECT array_agg(topic ORDER BY id) FROM outbox "
            "WHERE payload->>'type' = 'job.retry_requested'",
        )
        assert retries == [topics.retry(settings, "jobs.commands", 1)] * 2
        assert await JobExecutor(engine, [job], settings).recover_stalled() == 0
    finally:
        for conn, _ in holders:
            await conn.close()


async def test_a_slot_is_queued_once(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await runqueue.enqueue(conn, job="j", slot=SLOT, trigger="scheduled")
        again = await runqueue.enqueue(conn, job="j", slot=SLOT, trigger="backfill")
        other_scope = await runqueue.enqueue(
            conn, job="j", slot=SLOT, trigger="scheduled", scope="s"
        )
    assert first is not None and again is None and other_scope is not None
