"""peers: the same idempotent database job run by jobstream, Celery and Procrastinate.

Each system gets a fresh database with the job's tables (bench/peer_job.py), the
whole backlog of jobs enqueued before its worker starts (so enqueueing is not
timed), and its worker as a subprocess: jobstream in batch mode, Celery with the
prefork pool at concurrency 2 (one process per core) on Redis, Procrastinate with
10 concurrent async jobs on PostgreSQL. Jobs/s is measured from the first audit
row seen to the last; every system must end with exactly one audit row per job.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import peer_job
from bench.claims_stream import Event
from bench.common import Process, bench_stack, console, fresh_database, machine, settings_env
from bench.measure import publish_all
from bench.peers_jobstream import TOPIC
from service.config import Settings
from service.db.session import create_engine
from service.engine.kafka import ensure_topics

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
SYSTEMS = {
    "jobstream": "batch consumer, 1 process",
    "celery": "Redis broker, prefork × 2",
    "procrastinate": "PostgreSQL queue, 10 async jobs",
}
INSTALL = "pip install -e '.[bench]' (or make bench)"
STALL_S = 90.0
AUDITED = sa.text("SELECT count(*) FROM peer_audit")
TOTALS = sa.text(
    "SELECT (SELECT count(*) FROM peer_audit), (SELECT coalesce(sum(runs), 0) FROM peer_items)"
)

Jobs = list[tuple[str, str]]


@dataclass
class Result:
    system: str
    jobs: int = 0
    rate: float = float("nan")
    rss_mb: float = float("nan")
    note: str = ""


def _missing(system: str) -> str:
    """Why ``system`` cannot run here (not installed, no Redis), or ``""``."""
    needs = {"celery": ("celery", "redis", "psycopg"), "procrastinate": ("procrastinate",)}
    absent = [m for m in needs.get(system, ()) if importlib.util.find_spec(m) is None]
    if absent:
        return f"not installed ({', '.join(absent)}): {INSTALL}"
    if system == "celery":
        url = urlsplit(REDIS)
        try:
            socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), 2).close()
        except OSError as exc:
            return f"no Redis at {url.hostname}:{url.port} ({exc}); set BENCH_REDIS"
    return ""


async def _progress(engine: AsyncEngine, total: int, proc: Process) -> float:
    """Jobs/s from the last poll that saw no audit row to the first that saw them all."""
    started = time.monotonic()
    last, last_change = 0, started
    while last < total:
        async with engine.connect() as conn:
            done = int((await conn.execute(AUDITED)).scalar_one())
        at = time.monotonic()
        if done == 0:
            started = at
        if done != last:
            last, last_change = done, at
        elif at - last_change > STALL_S:
            raise AssertionError(f"only {done} of {total} jobs done; stalled")
        proc.check()
        if last < total:
            await asyncio.sleep(0.05)
    return total / (time.monotonic() - started)


async def _jobstream(s: Settings, jobs: Jobs, log: Path) -> Process:
    topic = s.topic(TOPIC)
    await ensure_topics(s, [topic])
    events = [
        Event(item, {"specversion": "1.0", "id": job, "source": "/bench", "type": "bench.peer_job"})
        for job, item in jobs
    ]
    for event, (job, item) in zip(events, jobs, strict=True):
        event.doc["data"] = {"job_id": job, "item_id": item}
    await publish_all(s, topic, events)
    return Process([sys.executable, "-m", "bench.peers_jobstream"], settings_env(s), log)


def _celery_enqueue(jobs: Jobs, queue: str) -> None:
    from bench.peers_celery import app, run_job

    app.conf.update(broker_url=REDIS, task_default_queue=queue)
    with app.producer_or_acquire() as producer:
        for job, item in jobs:
            run_job.apply_async((job, item), producer=producer)


async def _celery(s: Settings, jobs: Jobs, log: Path) -> Process:
    queue = f"bench-peers-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(_celery_enqueue, jobs, queue)
    env = {**os.environ, "BENCH_REDIS": REDIS, "BENCH_QUEUE": queue}
    env["BENCH_PG"] = peer_job.libpq_url(s.require_database_url())
    argv = [sys.executable, "-m", "celery", "-A", "bench.peers_celery", "worker"]
    argv += ["--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING"]
    return Process([*argv, "--without-gossip", "--without-mingle"], env, log)


async def _procrastinate(s: Settings, jobs: Jobs, log: Path) -> Process:
    import procrastinate
    from procrastinate.types import JSONDict

    pg = peer_job.libpq_url(s.require_database_url())
    papp = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=pg))
    async with papp.open_async():
        await papp.schema_manager.apply_schema_async()
        deferrer = papp.configure_task("peer_job", queue="bench-peers")
        for start in range(0, len(jobs), 1000):
            chunk: list[JSONDict] = [
                {"job_id": j, "item_id": i} for j, i in jobs[start : start + 1000]
            ]
            await deferrer.batch_defer_async(*chunk)
    env = {**os.environ, "BENCH_PG": pg}
    argv = [sys.executable, "-m", "procrastinate", "--app", "bench.peers_procrastinate.app"]
    return Process([*argv, "worker", "--concurrency", "10"], env, log)


async def _one(system: str, s: Settings, n: int, logs: Path) -> Result:
    engine = create_engine(s, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in peer_job.SCHEMA:
                await conn.execute(sa.text(statement))
            await conn.execute(sa.text(peer_job.SEED.format(n=peer_job.ITEMS)))
        jobs = [(str(uuid.uuid4()), peer_job.item_of(i)) for i in range(n)]
        start = {"jobstream": _jobstream, "celery": _celery, "procrastinate": _procrastinate}
        process = await start[system](s, jobs, logs / f"peers-{system}.log")
        with process as proc:
            rate = await _progress(engine, n, proc)
            rss = proc.read_peak_rss()
        async with engine.connect() as conn:
            audited, runs = (await conn.execute(TOTALS)).one()
        if (audited, runs) != (n, n):
            raise AssertionError(f"{system}: {audited} audit rows, {runs} runs for {n} jobs")
        return Result(system, n, rate, rss)
    finally:
        await engine.dispose()


async def run(settings: Settings, n: int, logs: Path) -> list[Result]:
    results = []
    run_id = int(time.time())
    for system in SYSTEMS:
        if note := _missing(system):
            results.append(Result(system, note=note))
            continue
        url = await fresh_database(settings.require_database_url(), "jobstream_bench")
        s = settings.with_overrides(
            database_url=url, topic_prefix=f"bench{run_id}peers.", group_id=f"bench-{run_id}-peers"
        )
        console.print(f"[dim]peers: {system} …[/]")
        results.append(await _one(system, s, n, logs))
    return results


def table(results: list[Result]) -> Table:
    t = Table(
        title=f"peers: the same idempotent job (insert-if-absent, update, audit) ({machine()})"
    )
    t.add_column("system")
    t.add_column("setup")
    for col in ("jobs", "jobs/s", "jobstream ×", "peak RSS MB"):
        t.add_column(col, justify="right")
    t.add_column("note")
    ours = results[0].rate
    for r in results:
        measured = r.rate == r.rate
        t.add_row(
            r.system,
            SYSTEMS[r.system],
            f"{r.jobs:,}" if measured else "—",
            f"{r.rate:,.0f}" if measured else "—",
            f"{ours / r.rate:.1f}×" if measured and r.system != "jobstream" else "—",
            f"{r.rss_mb:,.0f}" if measured else "—",
            r.note,
        )
    return t


def main(settings: Settings, jobs: int) -> list[Result]:
    with bench_stack(settings, broker=True) as s:
        logs = Path(s.state_dir).resolve() / "bench" / "logs"
        results = asyncio.run(run(s, jobs, logs))
    console.print(table(results))
    return results
