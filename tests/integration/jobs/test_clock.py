"""The clock on fake time with the real broker and database: takeover, catch-up, deadlines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.jobs import JobTick
from service.app import Runtime
from service.config import Settings
from service.engine.clock import CLOCK_LOCK, Clock
from service.engine.timesource import FakeTime
from service.engine.workflow import Workflow
from tests.helpers import wait_for
from tests.integration.jobs.support import effect_slots, recording_job, roles, runs, scalar

pytestmark = pytest.mark.integration

QUARTER = timedelta(minutes=15)


async def last_slot(engine: AsyncEngine, job: str) -> datetime | None:
    value = await scalar(engine, "SELECT last_slot FROM schedules WHERE job = :j", j=job)
    return value if isinstance(value, datetime) else None


async def test_two_clocks_two_workers_run_a_day_of_quarter_hours_exactly_once(
    settings: Settings, effects: AsyncEngine
) -> None:
    job = recording_job("test.quarter", "*/15 * * * *")
    s = settings.with_overrides(clock_standby_retry_s=0.2, retry_delays_s=[0.2])
    rt = Runtime(s, effects, workflows=[Workflow("t", "service.db.tables", jobs=(job,))])
    day = datetime(2026, 3, 1, tzinfo=UTC)
    expected = [day + QUARTER * i for i in range(1, 97)]
    fake = FakeTime(day)
    emitted: dict[str, list[datetime]] = {"a": [], "b": []}

    def seen_by(name: str) -> object:
        def seen(tick: JobTick, _at: datetime) -> None:
            if tick.data.job == job.name:  # the engine's daily jobs tick too
                emitted[name].append(tick.data.slot)

        return seen

    async with roles(s, effects, rt.jobs) as r:
        await r.workers(2)
        clock_a, stop_a, task_a = await r.clock(fake, on_emit=seen_by("a"))

        async def schedule_known() -> bool:
            return await last_slot(effects, job.name) == day

        await wait_for(schedule_known, what="first sight of the schedule")
        clock_b, _, _ = await r.clock(fake, on_emit=seen_by("b"))
        assert clock_a.active and not clock_b.active
        for i, slot in enumerate(expected, start=1):
            if i == 49:  # the active clock dies; and it had not recorded its last hour
                stop_a.set()
                await task_a
                async with effects.begin() as conn:
                    await conn.execute(
                        sa.text("UPDATE schedules SET last_slot = last_slot - interval '1 hour'")
                    )
            fake.set(slot)

            async def emitted_up_to(slot: datetime = slot) -> bool:
                return await last_slot(effects, job.name) == slot

            await wait_for(emitted_up_to, what=f"slot {slot} emitted")

        async def all_ran() -> bool:
            n = await scalar(
                effects, "SELECT count(*) FROM job_runs WHERE job = :j AND status = 'succeeded'",
                j=job.name,
            )  # fmt: skip
            return bool(n == 96)

        await wait_for(all_ran, timeout=60, what="96 succeeded runs")
        assert clock_b.active

    rows = await runs(effects, job.name)
    assert [r.slot for r in rows] == expected and {r.status for r in rows} == {"succeeded"}
    assert await effect_slots(effects, job.name) == expected  # each slot's effect exactly once
    assert emitted["a"] == expected[:48]
    assert emitted["b"] == expected[44:]  # the standby re-emitted the unrecorded hour: deduped


async def test_after_three_hours_down_only_the_catch_up_window_runs(
    settings: Settings, effects: AsyncEngine
) -> None:
    job = recording_job("test.catchup", "*/15 * * * *", catchup_window_s=3600)
    t0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    fake = FakeTime(t0)
    settings = settings.with_overrides(retry_delays_s=[0.2])  # fewer tier consumers to join
    async with roles(settings, effects, [job]) as r:
        _, stop, task = await r.clock(fake)

        async def schedule_known() -> bool:
            return await last_slot(effects, job.name) == t0

        await wait_for(schedule_known, what="first sight")
        stop.set()
        await task  # the clock is down from 10:00 ...

        back = t0 + timedelta(hours=3, seconds=30)  # ... until 13:00:30
        fake.set(back)
        await r.workers(1)
        await r.clock(fake)
        due = [t0 + timedelta(hours=2) + QUARTER * i for i in range(1, 5)]  # 12:15 .. 13:00
        missed = [t0 + QUARTER * i for i in range(1, 9)]  # 10:15 .. 12:00

        async def caught_up() -> bool:
            rows = await runs(effects, job.name)
            return sum(r.status == "succeeded" for r in rows) == len(due)

        await wait_for(caught_up, timeout=60, what="the last hour's slots run")

        # A clock that forgot it emitted them emits them again: nothing runs twice.
        async with effects.begin() as conn:
            await conn.execute(sa.text("UPDATE schedules SET last_slot = :t"), {"t": t0})
        marker = t0 + timedelta(hours=3) + QUARTER
        fake.set(marker + timedelta(seconds=30))  # a later slot on the same partition

        async def marker_ran() -> bool:
            return marker in await effect_slots(effects, job.name)

        await wait_for(marker_ran, timeout=60, what="the marker slot")

    rows = await runs(effects, job.name)
    assert [r.slot for r in rows if r.status == "missed"] == missed
    assert all("catch-up window" in r.error for r in rows if r.status == "missed")
    assert [r.slot for r in rows if r.status == "succeeded"] == [*due, marker]
    assert await effect_slots(effects, job.name) == [*due, marker]


class Recorder:
    """Stands in for the broker where only the clock's bookkeeping is under test."""

    def __init__(self) -> None:
        self.ticks: list[JobTick] = []

    async def send_many(self, messages: object) -> None:
        self.ticks.extend(JobTick.model_validate_json(m[1]) for m in messages)  # type: ignore[attr-defined]


async def test_a_slot_past_its_deadline_raises_one_overdue_alert(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = recording_job("test.deadline", "0 * * * *", deadline_s=600)
    t0 = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    fake, recorder = FakeTime(t0), Recorder()
    clock = Clock(engine, [job], settings, recorder, fake)
    await clock.step()  # first sight at 10:30
    for minutes in (30, 35, 45, 75, 80, 95, 105):  # 11:00 never runs; 12:00 does
        fake.set(t0 + timedelta(minutes=minutes))
        await clock.step()
        if minutes == 95:  # 12:00 succeeded in time
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text("INSERT INTO job_runs (job, slot, trigger, status) VALUES "
                            "(:j, '2026-03-01T12:00Z', 'scheduled', 'succeeded')"), {"j": job.name}
                )  # fmt: skip

    assert [t.data.slot.hour for t in recorder.ticks] == [11, 12]
    alerts = await scalar(
        engine,
        "SELECT jsonb_agg(payload->'data' ORDER BY id) FROM outbox "
        "WHERE payload->'data'->>'template' = 'job.overdue'",
    )
    assert len(alerts) == 1  # 11:00 once, although the clock looked again and again
    assert alerts[0]["data"]["slot"] == "2026-03-01T11:00:00+00:00"
    assert alerts[0]["data"]["status"] == "no run" and alerts[0]["recipient"] == "ops"
    logged = await scalar(engine, "SELECT count(*) FROM event_log WHERE event_type = 'job.overdue'")
    assert logged == 1


async def test_paused_jobs_get_no_ticks_and_resume_from_now(
    settings: Settings, engine: AsyncEngine
) -> None:
    from service.engine import job_admin

    job = recording_job("test.pausable", "*/5 * * * *")
    t0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    fake, recorder = FakeTime(t0), Recorder()
    clock = Clock(engine, [job], settings, recorder, fake)
    await clock.step()
    assert await job_admin.pause(engine, job.name, "alice", "maintenance window")
    fake.set(t0 + timedelta(minutes=30))
    await clock.step()
    assert recorder.ticks == []
    await job_admin.resume(engine, job.name, "alice", now=t0 + timedelta(minutes=31))
    fake.set(t0 + timedelta(minutes=35))
    await clock.step()
    assert [t.data.slot for t in recorder.ticks] == [t0 + timedelta(minutes=35)]
    assert await scalar(engine, "SELECT count(*) FROM job_runs") == 0  # nothing missed


async def test_scoped_jobs_tick_each_scope_in_its_own_timezone(
    settings: Settings, engine: AsyncEngine
) -> None:
    from service.engine.workflow import Scope

    async def zones(conn: object) -> list[Scope]:
        return [Scope("eu", "Europe/Berlin"), Scope("us", "America/New_York")]

    job = recording_job("test.morning", "0 8 * * *", scopes=zones, catchup_window_s=86400)
    t0 = datetime(2026, 3, 1, 0, tzinfo=UTC)
    fake, recorder = FakeTime(t0), Recorder()
    clock = Clock(engine, [job], settings, recorder, fake)
    await clock.step()
    fake.set(t0 + timedelta(hours=14))
    await clock.step()
    got = sorted((t.data.scope, t.data.slot.hour, t.key) for t in recorder.ticks)
    assert got == [("eu", 7, "test.morning"), ("us", 13, "test.morning")]
    assert len({t.id for t in recorder.ticks}) == 2


async def test_a_clock_whose_lock_session_dies_stands_down_for_the_standby(
    settings: Settings, engine: AsyncEngine
) -> None:
    """The lock lives in one session: when PostgreSQL ends it (a restart, a network cut,
    pg_terminate_backend), a standby acquires the lock at once, so the clock that had it
    must stop emitting before its next tick, or both clocks emit every slot."""
    job = recording_job("test.cut", "*/15 * * * *")
    t0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    fake = FakeTime(t0)
    s = settings.with_overrides(clock_standby_retry_s=0.1)
    seen_a, seen_b = Recorder(), Recorder()
    clock_a, clock_b = Clock(engine, [job], s, seen_a, fake), Clock(engine, [job], s, seen_b, fake)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(clock_a.run(stop))]
    try:

        async def a_ticking() -> bool:
            return clock_a.active and await last_slot(engine, job.name) == t0

        await wait_for(a_ticking, what="clock a active")
        pid = await scalar(
            engine,
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = :k"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            k=CLOCK_LOCK,
        )
        assert await scalar(engine, "SELECT pg_terminate_backend(:p)", p=pid)
        tasks.append(asyncio.create_task(clock_b.run(stop)))

        async def b_active() -> bool:
            return clock_b.active

        await wait_for(b_active, what="clock b taking the lock")
        fake.set(t0 + QUARTER)  # both wake for the 10:15 slot

        async def b_emitted_and_a_stood_down() -> bool:
            return len(seen_b.ticks) == 1 and not clock_a.active

        await wait_for(b_emitted_and_a_stood_down, what="b emitting, a standing down")
        assert seen_a.ticks == []  # a never emitted again
        assert [t.data.slot for t in seen_b.ticks] == [t0 + QUARTER]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
