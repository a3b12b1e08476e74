"""The clock: one tick per (schedule, slot) on ``jobs.ticks``, on time, across downtime.

One clock is active (advisory lock); standbys take over within
``clock_standby_retry_s``. The lock lives in one database session: a clock checks
that session right before it emits and stands down if it died (a standby may hold
the lock by then), so two clocks never emit side by side. The last slot emitted per
schedule lives in ``schedules``, so whoever holds the lock next continues from there
(a tick sent but not yet recorded when its clock died is sent again by the next one;
the tick id dedupes it): slots still inside the job's catch-up window are emitted in
order, older ones become ``missed`` runs. A schedule seen for the first time starts
from now. Each pass also checks deadlines: a slot not succeeded by
``slot + deadline_s`` raises ``job.overdue`` once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.jobs import JOBS_TICKS_TOPIC, JobTick, JobTickData
from service.config import Settings
from service.db.tables import job_pauses, job_runs, schedules
from service.engine import deadlines
from service.engine.locks import AdvisoryLock
from service.engine.metrics import JOB_RUNS, TICK_LATENESS
from service.engine.records import derived_id
from service.engine.schedule import Schedule, jitter_offset
from service.engine.timesource import SystemTime, TimeSource, wait_any
from service.engine.workflow import Job, Scope

log = logging.getLogger("jobstream.clock")

CLOCK_LOCK = 7_420_002
#: Slots handled per schedule per pass: a long outage of a per-second schedule is
#: worked off over several passes instead of one huge one.
MAX_SLOTS_PER_PASS = 1000

Message = tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]


class LockLost(Exception):
    """The clock lock's session died: another clock may be active now."""


class TickPublisher(Protocol):
    """Sends messages in order and returns once the broker acked all of them."""

    async def send_many(self, messages: Iterable[Message]) -> None: ...


@dataclass(frozen=True)
class Wanted:
    """One schedule the clock keeps: a job, or one scope of a fanned-out job."""

    job: Job
    scope: str
    timezone: str

    @property
    def key(self) -> str:
        return f"{self.job.name}|{self.scope}" if self.scope else self.job.name

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.job.cron, self.timezone)


def tick(settings: Settings, wanted: Wanted, slot: datetime) -> JobTick:
    """The tick of one slot; its id is derived from schedule and slot, so repeats dedupe."""
    return JobTick(
        id=derived_id("tick", wanted.job.name, wanted.scope, slot.isoformat()),
        source=settings.source,
        time=slot,
        subject=wanted.key,
        data=JobTickData(
            job=wanted.job.name, scope=wanted.scope or None, slot=slot, timezone=wanted.timezone
        ),
    )


def simulate(
    jobs: Iterable[Job], start: datetime, end: datetime, only: str | None = None
) -> list[tuple[Job, datetime]]:
    """Every (job, slot) that would fire in [start, end], in time order; pure."""
    fired = [
        (job, slot)
        for job in jobs
        if job.enabled and (only is None or job.name == only)
        for slot in Schedule(job.cron, job.timezone).between(start, end)
    ]
    return sorted(fired, key=lambda pair: (pair[1], pair[0].name))


class Clock:
    """Emits the due slots of every enabled, unpaused schedule; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        jobs: list[Job],
        settings: Settings,
        publisher: TickPublisher,
        clock: TimeSource | None = None,
        on_emit: Callable[[JobTick, datetime], None] | None = None,
    ) -> None:
        self.engine = engine
        self.jobs = jobs
        self.settings = settings
        self.publisher = publisher
        self.time = clock or SystemTime()
        self.on_emit = on_emit
        self.active = False
        self._lock: AdvisoryLock | None = None
        self._scopes: dict[str, tuple[float, list[Scope]]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for the clock lock (standby), then emit ticks until ``stop``.

        A clock whose lock session died (its connection was cut or terminated: the
        lock went with it and a standby may hold it now) stands down before its next
        emission, so two clocks never emit side by side; it competes for the lock again
        after one standby period, which lets a standby with a healthy session go first.
        """
        retry_s = self.settings.clock_standby_retry_s
        while not stop.is_set():
            lock = AdvisoryLock(self.engine, CLOCK_LOCK, "clock", stop, retry_s)
            async with lock as held:
                if not held:
                    return
                self.active, self._lock = True, lock
                try:
                    await self._tick_while_held(stop)
                finally:
                    self.active, self._lock = False, None
            await wait_any(stop, limit_s=retry_s)

    async def _tick_while_held(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                wake_at = await self.step()
            except LockLost:
                log.warning("clock lock lost: standing down", extra={"action": "clock_lock_lost"})
                return
            except Exception:
                log.exception("clock pass failed", extra={"action": "clock_error"})
                wake_at = self.time.now() + timedelta(seconds=self.settings.clock_poll_s)
            await self.time.sleep_until(wake_at, stop)

    async def _ensure_held(self) -> None:
        """Raise :class:`LockLost` unless the lock is still ours (one round trip on its
        connection); called right before anything is emitted or recorded."""
        if self._lock is not None and not await self._lock.alive():
            raise LockLost

    async def step(self) -> datetime:
        """One pass over every schedule; return when the next pass is due."""
        now = self.time.now()
        wake = now + timedelta(seconds=self.settings.clock_poll_s)
        wanted = await self._wanted()
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(schedules))
            states = {(r.job, r.scope): r for r in rows}
            paused = set((await conn.execute(sa.select(job_pauses.c.job))).scalars())
        await self._forget_disabled()
        for w in wanted:
            if w.job.name in paused:
                continue  # resume restarts it from then (see job_admin.resume)
            state = states.get((w.job.name, w.scope))
            if state is None:
                await self._first_sight(w, now)
                last, checked = now, now
            else:
                last, checked = state.last_slot, state.deadline_checked or state.last_slot
            pending, last = await self._catch_up(w, last, now)
            if w.job.deadline_s is not None:
                await deadlines.check(self.engine, self.settings, w, checked, last, now)
            wake = min(wake, pending)
        return wake

    async def _wanted(self) -> list[Wanted]:
        wanted = []
        for job in self.jobs:
            if not job.enabled:
                continue
            if job.scopes is None:
                wanted.append(Wanted(job, "", job.timezone))
            else:
                wanted.extend(Wanted(job, s.id, s.timezone) for s in await self._scopes_of(job))
        return wanted

    async def _scopes_of(self, job: Job) -> list[Scope]:
        fetched_at, scopes = self._scopes.get(job.name, (float("-inf"), []))
        if time.monotonic() - fetched_at < self.settings.clock_scope_refresh_s:
            return scopes
        assert job.scopes is not None
        try:
            async with self.engine.connect() as conn:
                scopes = await job.scopes(conn)
            self._scopes[job.name] = (time.monotonic(), scopes)
        except Exception:  # keep ticking the scopes we knew
            log.exception("listing scopes failed", extra={"action": "scopes", "job": job.name})
        return scopes

    async def _forget_disabled(self) -> None:
        """A disabled job's schedule is dropped, so enabling it starts from then."""
        disabled = [job.name for job in self.jobs if not job.enabled]
        if disabled:
            async with self.engine.begin() as conn:
                await conn.execute(schedules.delete().where(schedules.c.job.in_(disabled)))

    async def _first_sight(self, w: Wanted, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(schedules)
                .values(
                    job=w.job.name,
                    scope=w.scope,
                    cron=w.job.cron,
                    timezone=w.timezone,
                    last_slot=now,
                    deadline_checked=now,
                )
                .on_conflict_do_nothing()
            )
        log.info("new schedule", extra={"action": "schedule_new", "schedule": w.key})

    async def _catch_up(
        self, w: Wanted, last: datetime, now: datetime
    ) -> tuple[datetime, datetime]:
        """Emit or record as missed every slot due by ``now``; return (next due, last slot)."""
        due: list[datetime] = []
        missed: list[datetime] = []
        pending = now + timedelta(days=366)
        for slot in w.schedule.slots(last):
            at = slot + jitter_offset(w.key, slot, w.job.jitter_s)
            if at > now:
                pending = at
                break
            if (now - slot).total_seconds() > w.job.catchup_window_s:
                missed.append(slot)
            else:
                due.append(slot)
            if len(due) + len(missed) >= MAX_SLOTS_PER_PASS:
                pending = now  # more to do: come straight back
                break
        if missed:
            await self._record_missed(w, missed)
        if due:
            await self._emit(w, due)
        return pending, (due or missed or [last])[-1]

    async def _record_missed(self, w: Wanted, missed: list[datetime]) -> None:
        error = (
            f"missed: the clock was not running at the slot and it is older than the "
            f"catch-up window ({w.job.catchup_window_s:g} s)"
        )
        await self._ensure_held()
        recorded = datetime.now(UTC)
        rows = [
            {
                "job": w.job.name,
                "scope": w.scope,
                "slot": slot,
                "timezone": w.timezone,
                "trigger": "scheduled",
                "status": "missed",
                "error": error,
                "finished_at": recorded,
            }
            for slot in missed
        ]
        async with self.engine.begin() as conn:
            await conn.execute(pg_insert(job_runs).on_conflict_do_nothing(), rows)
            await self._advance(conn, w, missed[-1])
        JOB_RUNS.labels(job=w.job.name, status="missed").inc(len(missed))
        log.warning(
            "slots missed",
            extra={"action": "missed", "schedule": w.key, "count": len(missed)},
        )

    async def _emit(self, w: Wanted, due: list[datetime]) -> None:
        topic = self.settings.topic(JOBS_TICKS_TOPIC)
        ticks = [tick(self.settings, w, slot) for slot in due]
        await self._ensure_held()
        await self.publisher.send_many((topic, t.to_json(), t.key.encode(), []) for t in ticks)
        acked = self.time.now()
        for t in ticks:
            at = t.data.slot + jitter_offset(w.key, t.data.slot, w.job.jitter_s)
            TICK_LATENESS.labels(job=w.job.name).observe(max((acked - at).total_seconds(), 0.0))
            if self.on_emit is not None:
                self.on_emit(t, acked)
        async with self.engine.begin() as conn:
            await self._advance(conn, w, due[-1])

    async def _advance(self, conn: AsyncConnection, w: Wanted, slot: datetime) -> None:
        await conn.execute(
            schedules.update()
            .where(
                schedules.c.job == w.job.name,
                schedules.c.scope == w.scope,
                schedules.c.last_slot < slot,  # a clock that lost its lock never goes back
            )
            .values(last_slot=slot, cron=w.job.cron, timezone=w.timezone, updated_at=sa.func.now())
        )
