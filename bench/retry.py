"""retry: how late retry-tier redelivery runs after its due time (``x-due-at``), never early.

Each event fails its first attempt (bench/retry_worker.py) and is forwarded to retry
tier 1 with ``x-due-at`` = failure time + delay (+ jitter). Its second attempt
records when it ran. Lateness = ran − due, per event, from the outbox row of the
forward and the event-log row of the success; an early run would be negative.
Events are published at a steady pace after one warm-up event has gone through
both the source and the tier consumer (so group joins are not measured).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.claims_stream import ClaimsStream, Event
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
from bench.measure import publish_paced
from bench.retry_worker import TOPIC
from service.config import Settings
from service.db.session import create_engine
from service.engine import topics
from service.engine.kafka import ensure_topics

STALL_S = 60.0
HANDLED = sa.text("SELECT count(*) FROM event_log WHERE entity_type = 'bench'")
LATENESS = sa.text(
    """
    SELECT (l.metadata->>'handled_at')::float8 - (o.headers->>'x-due-at')::float8
    FROM outbox o
    JOIN event_log l ON l.entity_id = convert_from(o.value, 'UTF8')::jsonb->>'id'
    WHERE o.topic = :tier AND l.entity_id <> ALL(CAST(:skip AS text[]))
    """
)


@dataclass
class Result:
    messages: int
    delay_s: float
    jitter: float
    early: int
    p50: float
    p99: float
    worst: float
    rss_mb: float


async def _handled(engine: AsyncEngine, count: int, proc: Process) -> None:
    last, last_change = -1, time.monotonic()
    while True:
        async with engine.connect() as conn:
            done = int((await conn.execute(HANDLED)).scalar_one())
        if done >= count:
            return
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL_S:
            raise AssertionError(f"only {done} of {count} retried events handled; stalled")
        proc.check()
        await asyncio.sleep(0.05)


async def run(settings: Settings, messages: int, rate: float, logs: Path) -> Result:
    url = await fresh_database(settings.require_database_url(), "jobstream_bench")
    run_id = int(time.time())
    s = settings.with_overrides(
        database_url=url, topic_prefix=f"bench{run_id}retry.", group_id=f"bench-{run_id}-retry"
    )
    source = s.topic(TOPIC)
    await ensure_topics(s, [source])
    warmup, *events = _distinct(messages + 1)
    engine = create_engine(s, pool_size=1)
    argv = [sys.executable, "-m", "bench.retry_worker"]
    try:
        with Process(argv, settings_env(s), logs / "retry.log") as proc:
            await publish_paced(s, source, [warmup], rate)
            await _handled(engine, 1, proc)
            await publish_paced(s, source, events, rate)
            await _handled(engine, messages + 1, proc)
            rss = proc.read_peak_rss()
        async with engine.connect() as conn:
            tier = topics.retry(s, TOPIC, 1)
            skip = [str(warmup.doc["id"])]
            late = [row[0] for row in await conn.execute(LATENESS, {"tier": tier, "skip": skip})]
    finally:
        await engine.dispose()
    if len(late) != messages:
        raise AssertionError(f"{len(late)} of {messages} events were retried through tier 1")
    return Result(
        messages,
        s.retry_delays_s[0],
        s.retry_jitter,
        sum(1 for x in late if x < 0),
        percentile(late, 0.5),
        percentile(late, 0.99),
        max(late),
        rss,
    )


def _distinct(n: int) -> list[Event]:
    """``n`` claim submissions, each its own key, so none waits behind another's retry."""
    stream = ClaimsStream(seed=9)
    events = [e for e in stream.take(n + 1200) if e.doc["type"] == "claim.submitted"]
    while len(events) < n:
        events += [e for e in stream.take(n) if e.doc["type"] == "claim.submitted"]
    return events[:n]


def table(r: Result) -> Table:
    t = Table(title=f"retry: tier-1 redelivery vs x-due-at ({machine()})")
    for col in (
        "messages",
        "tier-1 delay",
        "early (never early = 0)",
        "p50 late ms",
        "p99 late ms",
        "max late ms",
        "peak RSS MB",
    ):
        t.add_column(col, justify="right")
    t.add_row(
        f"{r.messages:,}",
        f"{r.delay_s:g} s + ≤{r.jitter:.0%} jitter",
        f"{r.early} ({'never early' if r.early == 0 else 'EARLY'})",
        ms(r.p50),
        ms(r.p99),
        ms(r.worst),
        f"{r.rss_mb:,.0f}",
    )
    return t


def main(settings: Settings, messages: int, rate: float) -> Result:
    with bench_stack(settings, broker=True) as s:
        logs = Path(s.state_dir).resolve() / "bench" / "logs"
        result = asyncio.run(run(s, messages, rate, logs))
    console.print(table(result))
    if result.early:
        raise AssertionError(f"{result.early} retries ran before they were due")
    return result
