"""pipeline: claim events end to end, published → committed in PostgreSQL, four ways.

(a) jobstream in batch mode, (b) jobstream one message per transaction (same
handler), (c) a plain FastStream handler (bench/plain_faststream.py), (d) the same
rows COPY'd straight into PostgreSQL. Each broker mode gets a fresh database and
fresh topics, a backlog published before its consumer starts (sustained events/s,
measured from the first commit seen to the last), then a paced load at a fixed
offered rate (latency: commit seen − publish, per event). Every mode must end with
the same counts and the same claim states, or the run fails.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from rich.table import Table

from bench import copy_ceiling
from bench.claims_stream import ClaimsStream, Event, now
from bench.common import (
    Process,
    bench_stack,
    console,
    fresh_database,
    machine,
    ms,
    percentile,
    settings_env,
)
from bench.measure import Watcher, publish_all, publish_paced
from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.db.session import create_engine
from service.engine.kafka import ensure_topics

MODES = {
    "a": "jobstream, batch",
    "b": "jobstream, 1 msg/transaction",
    "c": "plain FastStream",
    "d": "COPY ceiling (no broker)",
}
SLOW = {"b", "c"}
STALL_S = 90.0


@dataclass
class Result:
    mode: str
    events: int
    rate: float
    latency_events: int = 0
    offered: float = float("nan")
    p50: float = float("nan")
    p95: float = float("nan")
    p99: float = float("nan")
    rss_mb: float = float("nan")


@dataclass(frozen=True)
class Plan:
    events: int
    slow_events: int
    rate: float
    latency_s: float
    slow_latency_s: float

    def sizes(self, mode: str) -> tuple[int, int]:
        """(backlog events, paced events) for ``mode``."""
        slow = mode in SLOW
        backlog = min(self.events, self.slow_events) if slow else self.events
        seconds = self.slow_latency_s if slow else self.latency_s
        return backlog, 0 if mode == "d" else min(backlog, int(self.rate * seconds))


def _process(mode: str, s: Settings, log: Path) -> Process:
    if mode == "c":
        env = settings_env(s)
        env.update(
            BENCH_DATABASE_URL=s.require_database_url(),
            BENCH_KAFKA=s.require_kafka(),
            BENCH_TOPIC=s.topic(CLAIMS_INBOUND_TOPIC),
            BENCH_GROUP=s.group_id,
        )
        argv = [sys.executable, "-m", "faststream", "run", "bench.plain_faststream:app"]
        return Process(argv, env, log)
    extra = {"consume_batches": "false"} if mode == "b" else {}
    return Process.jobstream("worker", settings_env(s, **extra), log)


async def _verify(s: Settings, stream: ClaimsStream) -> None:
    """Every mode must leave the same work done: counts and claim states."""
    engine = create_engine(s, pool_size=1)
    try:
        async with engine.connect() as conn:

            async def count(sql: str) -> int:
                return int((await conn.execute(sa.text(sql))).scalar_one())

            inbox = await count("SELECT count(*) FROM processed_messages")
            logged = await count("SELECT count(*) FROM event_log")
            forwards = await count("SELECT count(*) FROM outbox")
            by_status = sa.text("SELECT status, count(*) FROM claims GROUP BY status")
            states: dict[str, int] = {row[0]: row[1] for row in await conn.execute(by_status)}
    finally:
        await engine.dispose()
    expected = dict(stream.statuses())
    got = (inbox, logged, forwards, states)
    want = (stream.total, stream.lifecycle, 0, expected)
    if got != want:
        raise AssertionError(f"counts do not add up: got {got}, expected {want}")


async def _broker_mode(mode: str, s: Settings, plan: Plan, logs: Path) -> Result:
    topic = s.topic(CLAIMS_INBOUND_TOPIC)
    await ensure_topics(s, [topic])
    stream = ClaimsStream()
    n_backlog, n_paced = plan.sizes(mode)
    backlog = stream.take(n_backlog)
    backlog_rows = stream.lifecycle
    paced = stream.take(n_paced)
    await publish_all(s, topic, backlog)
    engine = create_engine(s, pool_size=1)
    try:
        watcher = Watcher(engine, interval_s=0.02)
        with _process(mode, s, logs / f"pipeline-{mode}.log") as proc:
            await watcher.until(backlog_rows, STALL_S, proc.check)
            result = Result(mode, n_backlog, watcher.rate())
            if paced:
                watcher.interval_s = 0.005
                skip = watcher.seen
                watch = asyncio.create_task(watcher.until(stream.lifecycle, STALL_S, proc.check))
                result.offered = await publish_paced(s, topic, paced, plan.rate)
                await watch
                latencies = watcher.latencies(skip)
                result.latency_events = len(latencies)
                result.p50, result.p95, result.p99 = (
                    percentile(latencies, q) for q in (0.50, 0.95, 0.99)
                )
            result.rss_mb = proc.read_peak_rss()
    finally:
        await engine.dispose()
    await _verify(s, stream)
    return result


async def _copy_mode(s: Settings, plan: Plan) -> Result:
    stream = ClaimsStream()
    events: list[Event] = stream.take(plan.events)
    tables = copy_ceiling.rows(events, now())
    engine = create_engine(s, pool_size=1)
    try:
        seconds = await copy_ceiling.copy(engine, tables)
    finally:
        await engine.dispose()
    await _verify(s, stream)
    return Result("d", plan.events, plan.events / seconds)


async def run(settings: Settings, plan: Plan, modes: list[str], logs: Path) -> list[Result]:
    results = []
    run_id = int(time.time())
    for mode in modes:
        url = await fresh_database(settings.require_database_url(), "jobstream_bench")
        s = settings.with_overrides(
            database_url=url,
            topic_prefix=f"bench{run_id}{mode}.",
            group_id=f"bench-{run_id}-{mode}",
        )
        console.print(f"[dim]pipeline {mode}: {MODES[mode]} …[/]")
        if mode == "d":
            results.append(await _copy_mode(s, plan))
        else:
            results.append(await _broker_mode(mode, s, plan, logs))
    return results


def table(results: list[Result], plan: Plan) -> Table:
    by_mode = {r.mode: r for r in results}
    plain, ceiling = by_mode.get("c"), by_mode.get("d")
    t = Table(title=f"pipeline: claim events published → committed ({machine()})")
    for col in ("mode", "events", "events/s", "× plain", "% of COPY"):
        t.add_column(col, justify="right" if col != "mode" else "left")
    for col in (
        f"paced @ {plan.rate:,.0f}/s",
        "offered/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "peak RSS MB",
    ):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            f"({r.mode}) {MODES[r.mode]}",
            f"{r.events:,}",
            f"{r.rate:,.0f}",
            f"{r.rate / plain.rate:.1f}×" if plain else "—",
            f"{100 * r.rate / ceiling.rate:.0f} %" if ceiling else "—",
            f"{r.latency_events:,}" if r.latency_events else "—",
            f"{r.offered:,.0f}" if r.latency_events else "—",
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            f"{r.rss_mb:,.0f}" if r.rss_mb == r.rss_mb else "—",
        )
    return t


def main(settings: Settings, plan: Plan, modes: list[str]) -> list[Result]:
    """Run ``modes`` (all when empty) and print the table."""
    modes = modes or list(MODES)
    with bench_stack(settings, broker=True) as s:
        logs = Path(s.state_dir).resolve() / "bench" / "logs"
        results = asyncio.run(run(s, plan, modes, logs))
    console.print(table(results, plan))
    return results
