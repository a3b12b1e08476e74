"""relay: outbox rows published per second, commit-to-published latency, and NOTIFY's cost.

For each wake-up design (adaptive polling, LISTEN/NOTIFY) on a fresh database with
``jobstream relay`` as a subprocess:

1. backlog: N outbox rows inserted at once; published rows/s from the first row
   marked published to the last;
2. latency: committing writers (units of work, one event per commit) at a fixed
   offered rate; latency = ``published_at`` (set once the broker acked) − the
   moment the writer's commit returned;
3. writers flat out for a few seconds: commits/s, which shows whether a NOTIFY in
   every commit (PostgreSQL serialises notifying commits on a lock) throttles them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

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
from schemas.claims import CLAIMS_OUTBOUND_TOPIC, ClaimTimeoutReleased
from service.config import Settings
from service.db.session import create_engine
from service.engine.uow import NOTIFY_RELAY

WAKEUPS = ("poll", "notify")
WRITERS = 8
STALL_S = 60.0
BACKLOG = sa.text(
    """
    INSERT INTO outbox (event_id, topic, key, payload)
    SELECT gen_random_uuid(), :topic, 'c' || g,
           jsonb_build_object('specversion', '1.0', 'id', gen_random_uuid()::text,
                              'source', '/bench', 'type', 'claim.timeout_released',
                              'time', now(), 'data', jsonb_build_object('claim_id', 'c' || g))
    FROM generate_series(1, :n) g
    """
)
INSERT = "INSERT INTO outbox (event_id, topic, key, payload) VALUES ($1, $2, $3, $4::jsonb)"
UNPUBLISHED = sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
PUBLISHED_AT = sa.text(
    "SELECT event_id::text, extract(epoch FROM published_at)::float8 FROM outbox "
    "WHERE event_id = ANY(CAST(:ids AS uuid[]))"
)
TEMPLATE = ClaimTimeoutReleased.model_validate(
    {
        "id": str(uuid.uuid4()),
        "source": "/bench",
        "time": datetime(2026, 11, 1, tzinfo=UTC),
        "data": {
            "claim_id": "c-1",
            "task_id": "t-1",
            "reviewer_id": "m-1",
            "days_orphaned": 9,
            "timeout_threshold_days": 7,
            "trigger": "scheduled",
        },
    }
)

PAYLOAD = TEMPLATE.to_json().decode()


@dataclass
class Result:
    wakeup: str
    backlog: int = 0
    rate: float = float("nan")
    latency_events: int = 0
    p50: float = float("nan")
    p99: float = float("nan")
    commits_per_s: float = float("nan")
    rss_mb: float = float("nan")


async def _unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(UNPUBLISHED)).scalar_one())


async def _drain(engine: AsyncEngine, total: int, proc: Process) -> float:
    """Wait for the backlog to be published; rows/s from the first published row to the last."""
    first: tuple[float, int] | None = None
    last_change, left = time.monotonic(), total
    while True:
        now_left = await _unpublished(engine)
        at = time.monotonic()
        if now_left < left:
            last_change, left = at, now_left
            if first is None:
                first = (at, now_left)
        if left == 0:
            break
        if at - last_change > STALL_S:
            raise AssertionError(f"relay stalled with {left} of {total} rows unpublished")
        proc.check()
        await asyncio.sleep(0.02)
    assert first is not None
    started, remaining = first
    return remaining / (time.monotonic() - started)


async def _writers(
    engine: AsyncEngine, s: Settings, seconds: float, rate: float | None
) -> dict[str, float]:
    """``WRITERS`` concurrent writers, each committing one outbox row per transaction.

    They send what a unit of work sends for one published event (the outbox insert,
    plus ``pg_notify`` in notify mode) straight through asyncpg, so that generating
    the load costs little CPU next to the relay and PostgreSQL being measured.
    """
    committed: dict[str, float] = {}
    started = time.monotonic()
    share = rate / WRITERS if rate else None
    topic = s.topic(CLAIMS_OUTBOUND_TOPIC)
    notify = s.relay_wakeup == "notify"

    async def writer() -> None:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            done = 0
            while (elapsed := time.monotonic() - started) < seconds:
                if share is not None and done >= elapsed * share:
                    await asyncio.sleep(0.001)
                    continue
                event_id = str(uuid.uuid4())
                payload = PAYLOAD.replace(TEMPLATE.id, event_id)
                async with raw.transaction():
                    await raw.execute(INSERT, event_id, topic, "c-1", payload)
                    if notify:
                        await raw.execute(NOTIFY_RELAY.text)
                committed[event_id] = time.time()
                done += 1

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return committed


async def _one(s: Settings, wakeup: str, backlog: int, rate: float, logs: Path) -> Result:
    result = Result(wakeup, backlog)
    engine = create_engine(s, pool_size=WRITERS + 2)
    try:
        with Process.jobstream("relay", settings_env(s), logs / f"relay-{wakeup}.log") as proc:
            async with engine.begin() as conn:
                await conn.execute(BACKLOG, {"topic": s.topic(CLAIMS_OUTBOUND_TOPIC), "n": backlog})
            result.rate = await _drain(engine, backlog, proc)
            committed = await _writers(engine, s, 10.0, rate)
            await _drain(engine, len(committed), proc)
            async with engine.connect() as conn:
                rows = await conn.execute(PUBLISHED_AT, {"ids": list(committed)})
                latencies = [published - committed[event_id] for event_id, published in rows]
            result.latency_events = len(latencies)
            result.p50, result.p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            flat_out = await _writers(engine, s, 5.0, None)
            result.commits_per_s = len(flat_out) / 5.0
            await _drain(engine, len(flat_out), proc)
            result.rss_mb = proc.read_peak_rss()
    finally:
        await engine.dispose()
    return result


async def run(settings: Settings, backlog: int, rate: float, logs: Path) -> list[Result]:
    results = []
    run_id = int(time.time())
    for wakeup in WAKEUPS:
        url = await fresh_database(settings.require_database_url(), "jobstream_bench")
        s = settings.with_overrides(
            database_url=url, topic_prefix=f"bench{run_id}relay{wakeup}.", relay_wakeup=wakeup
        )
        console.print(f"[dim]relay: {wakeup} …[/]")
        results.append(await _one(s, wakeup, backlog, rate, logs))
    return results


def table(results: list[Result], rate: float) -> Table:
    t = Table(title=f"relay: outbox → broker ({machine()})")
    t.add_column("wake-up")
    for col in (
        "backlog rows",
        "published/s",
        f"commits @ {rate:,.0f}/s",
        "p50 ms",
        "p99 ms",
        f"writer commits/s ({WRITERS} writers, flat out)",
        "peak RSS MB",
    ):
        t.add_column(col, justify="right")
    base = results[0].commits_per_s
    for r in results:
        t.add_row(
            r.wakeup,
            f"{r.backlog:,}",
            f"{r.rate:,.0f}",
            f"{r.latency_events:,}",
            ms(r.p50),
            ms(r.p99),
            f"{r.commits_per_s:,.0f} ({r.commits_per_s / base:.2f}×)",
            f"{r.rss_mb:,.0f}",
        )
    return t


def main(settings: Settings, backlog: int, rate: float) -> list[Result]:
    with bench_stack(settings, broker=True) as s:
        logs = Path(s.state_dir).resolve() / "bench" / "logs"
        results = asyncio.run(run(s, backlog, rate, logs))
    console.print(table(results, rate))
    return results
