"""ticks: how late ticks leave the clock and jobs start, for a per-second schedule.

Runs the clock, a worker and its executor on the real broker and database (the
embedded ones unless configured) with a ``* * * * * *`` job, after warming the
consumer group up, and reports lateness relative to the slot time:

- tick emission: the broker acked the tick (clock side);
- queued: the worker's tick handler committed the run (job_runs.created_at);
- job start: the executor marked the run running (job_runs.started_at).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.common import bench_stack, console, cores, fresh_database
from schemas.jobs import JOBS_TICKS_TOPIC, JobTick
from service.config import Settings
from service.db.session import create_engine
from service.engine import jobs_workflow
from service.engine.clock import Clock, Wanted, tick
from service.engine.executor import JobExecutor
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.worker import Worker
from service.engine.workflow import Job, JobContext, JobResult

WARM_SLOT = datetime(2000, 1, 1, tzinfo=UTC)


async def noop(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """The benchmark's job: one round trip, so job start is what is measured."""
    await conn.execute(sa.text("SELECT 1"))
    return JobResult(0)


JOB = Job("bench.every-second", "* * * * * *", run=noop, description="bench", catchup_window_s=60)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _count(engine: AsyncEngine, since: datetime) -> int:
    async with engine.connect() as conn:
        n = await conn.execute(
            sa.text("SELECT count(*) FROM job_runs WHERE status = 'succeeded' AND slot >= :t"),
            {"t": since},
        )
        return int(n.scalar_one())


async def _warm_up(settings: Settings, engine: AsyncEngine, publisher: KafkaPublisher) -> None:
    """One tick through the whole path, so the consumer group has joined before we measure."""
    warm: JobTick = tick(settings, Wanted(JOB, "", "UTC"), WARM_SLOT)
    topic = settings.topic(JOBS_TICKS_TOPIC)
    await publisher.send_many([(topic, warm.to_json(), warm.key.encode(), [])])
    deadline = time.monotonic() + 120
    while await _count(engine, WARM_SLOT) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up tick did not run within 120 s: is the worker up?")
        await asyncio.sleep(0.1)


async def _run(settings: Settings, slots: int) -> dict[str, list[float]]:
    stamp = int(time.time())
    url = await fresh_database(settings.require_database_url(), "jobstream_bench_ticks")
    s = settings.with_overrides(
        database_url=url, topic_prefix=f"bench{stamp}.", group_id=f"bench-ticks-{stamp}"
    )
    engine = create_engine(s, url=url)
    emitted: dict[datetime, float] = {}
    worker = Worker(s, engine, [jobs_workflow.WORKFLOW])
    publisher = KafkaPublisher(s)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        await ensure_topics(s, [s.topic(JOBS_TICKS_TOPIC)])
        await publisher.start()
        await worker.start()
        tasks.append(asyncio.create_task(JobExecutor(engine, [JOB], s).run(stop)))
        with console.status("warming up the consumer group"):
            await _warm_up(s, engine, publisher)

        def on_emit(t: JobTick, _: datetime) -> None:
            emitted[t.data.slot] = time.time()

        clock = Clock(engine, [JOB], s, publisher, on_emit=on_emit)
        started = datetime.now(UTC)
        tasks.append(asyncio.create_task(clock.run(stop)))
        columns = (TextColumn("per-second slots"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("slots", total=slots)
            while (done := await _count(engine, started)) < slots:
                progress.update(bar, completed=done)
                await asyncio.sleep(0.5)
            progress.update(bar, completed=slots)
        stop.set()
        await asyncio.gather(*tasks)
        async with engine.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.text(
                        "SELECT slot, created_at, started_at FROM job_runs "
                        "WHERE slot >= :t AND status = 'succeeded' ORDER BY slot LIMIT :n"
                    ),
                    {"t": started, "n": slots},
                )
            )
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await worker.stop()
        await publisher.stop()
        await engine.dispose()
    ms = 1000.0
    return {
        "tick emitted (broker ack)": [
            (emitted[r.slot] - r.slot.timestamp()) * ms for r in rows if r.slot in emitted
        ],
        "run queued (tick handled)": [(r.created_at - r.slot).total_seconds() * ms for r in rows],
        "job started": [(r.started_at - r.slot).total_seconds() * ms for r in rows],
    }


def main(settings: Settings, slots: int) -> None:
    """Measure ``slots`` per-second slots and print p50, p99 and max lateness."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # rebalance chatter while joining
    with bench_stack(settings, broker=True) as s:
        figures = asyncio.run(_run(s, slots))
    table = Table(title=f"lateness after the slot, {slots} per-second slots ({cores()} cores)")
    for col in ("", "n", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right" if col else "left")
    for name, values in figures.items():
        table.add_row(
            name,
            str(len(values)),
            f"{percentile(values, 50):.1f}",
            f"{percentile(values, 99):.1f}",
            f"{max(values):.1f}",
        )
    console.print(table)
