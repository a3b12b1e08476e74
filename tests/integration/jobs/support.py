"""Support for the clock and job-runner tests: test jobs that leave traces, running roles.

``job_effects`` is a table the test jobs write one row into per run, in the run's
transaction: it shows what actually ran, independently of job_runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.engine import jobs_workflow
from service.engine.clock import Clock
from service.engine.executor import JobExecutor
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.outbox import Relay
from service.engine.timesource import TimeSource
from service.engine.worker import Worker
from service.engine.workflow import Job, JobContext, JobResult


async def record_effect(conn: AsyncConnection, ctx: JobContext, job: str) -> JobResult:
    await conn.execute(
        sa.text("INSERT INTO job_effects (job, scope, slot, actor) VALUES (:j, :s, :t, :a)"),
        {"j": job, "s": ctx.scope, "t": ctx.now, "a": ctx.actor},
    )
    return JobResult(1, [{"slot": ctx.now.isoformat()}])


def recording_job(name: str, cron: str, **options: Any) -> Job:
    """A job that writes one job_effects row per run."""

    async def run(conn: AsyncConnection, ctx: JobContext) -> JobResult:
        return await record_effect(conn, ctx, name)

    return Job(name=name, cron=cron, run=run, description=f"test job {name}", **options)


async def effect_slots(engine: AsyncEngine, job: str) -> list[datetime]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT slot FROM job_effects WHERE job = :j ORDER BY slot, id"), {"j": job}
        )
        return [r.slot for r in rows]


async def runs(engine: AsyncEngine, job: str) -> list[sa.Row[Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT * FROM job_runs WHERE job = :j ORDER BY slot, id"), {"j": job}
        )
        return list(rows)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


@dataclass
class Roles:
    """Roles started for a test; ``stop_all`` stops what is still running."""

    settings: Settings
    engine: AsyncEngine
    jobs: list[Job]
    tasks: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    executors: list[JobExecutor] = field(default_factory=list)

    def _spawn(self, run: Callable[[asyncio.Event], Awaitable[None]]) -> asyncio.Event:
        stop = asyncio.Event()
        self.tasks.append((stop, asyncio.create_task(run(stop))))  # type: ignore[arg-type]
        return stop

    async def workers(self, count: int = 1) -> list[Worker]:
        """Workers for the engine's handlers (ticks, commands), each with an executor."""
        workers = [
            Worker(self.settings, self.engine, [jobs_workflow.WORKFLOW]) for _ in range(count)
        ]
        await asyncio.gather(*(w.start() for w in workers))
        for w in workers:
            self.closers.append(w.stop)
            self.executor()
        return workers

    def executor(self) -> JobExecutor:
        executor = JobExecutor(self.engine, self.jobs, self.settings)
        self.executors.append(executor)
        self._spawn(executor.run)
        return executor

    async def clock(
        self, time: TimeSource, **kw: Any
    ) -> tuple[Clock, asyncio.Event, asyncio.Task[None]]:
        await ensure_topics(self.settings, [self.settings.topic("jobs.ticks")])
        publisher = KafkaPublisher(self.settings)
        await publisher.start()
        self.closers.append(publisher.stop)
        clock = Clock(self.engine, self.jobs, self.settings, publisher, time, **kw)
        stop = self._spawn(clock.run)
        return clock, stop, self.tasks[-1][1]

    async def relay(self) -> None:
        publisher = KafkaPublisher(self.settings)
        await publisher.start()
        self.closers.append(publisher.stop)
        self._spawn(Relay(self.engine, publisher, self.settings).run)

    async def stop_all(self) -> None:
        for stop, _ in self.tasks:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*(t for _, t in self.tasks)), 30)
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()


@contextlib.asynccontextmanager
async def roles(settings: Settings, engine: AsyncEngine, jobs: list[Job]) -> AsyncIterator[Roles]:
    started = Roles(settings, engine, jobs)
    try:
        yield started
    finally:
        await started.stop_all()
