"""poison: how much 1 % poison slows the valid messages behind it on their partition.

The same paced claims stream (10,000 events at 2,000/s by default) goes through a
jobstream worker twice: clean, then with poison mixed in at the given ratio. Each
poison message carries the key of the valid event right after it, so it sits on
that event's partition just ahead of it. Half of them are malformed bytes
(dead-lettered when decoded), half are transitions the rules refuse (a claim that
does not exist is "approved"), which fail inside a batch's transaction and make
the engine split the batch to isolate them. Reported: end-to-end latency of the
valid events (published → committed) in both runs, and the poison that reached the
dead-letter topic's outbox forwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from rich.table import Table

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
from bench.measure import Watcher, publish_all, publish_paced
from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.db.session import create_engine
from service.engine.kafka import ensure_topics

WARM_EVENTS = 3_000
STALL_S = 90.0


@dataclass
class Run:
    label: str
    valid: int
    poison: int
    offered: float
    p50: float
    p95: float
    p99: float
    dead_lettered: int


class Poison(Event):
    """A message that can never be applied, keyed like the valid event it precedes."""

    def __init__(self, key: str, n: int) -> None:
        super().__init__(key, {})
        self.n = n

    @property
    def lifecycle(self) -> bool:
        return False

    def encode(self, at: datetime) -> bytes:
        if self.n % 2:
            return b'{"specversion": "1.0", "id": "broken-' + str(self.n).encode() + b'", "type"'
        ghost = {
            "specversion": "1.0",
            "id": f"00000000-0000-4000-8000-{self.n:012d}",
            "source": "/bench/poison",
            "type": "claim.approved",
            "time": at.isoformat(),
            "data": {"claim_id": f"{self.key}-ghost", "reviewer_id": "r1"},
        }
        return json.dumps(ghost).encode()


def mixed(events: list[Event], ratio: float) -> tuple[list[Event], int]:
    """``events`` with a poison message before every ``1 / ratio``-th one."""
    if ratio <= 0:
        return events, 0
    every = max(1, round(1 / ratio))
    out: list[Event] = []
    poison = 0
    for i, event in enumerate(events):
        if i % every == every - 1:
            poison += 1
            out.append(Poison(event.key, poison))
        out.append(event)
    return out, poison


async def _one(
    settings: Settings, label: str, n: int, rate: float, ratio: float, logs: Path
) -> Run:
    stamp = f"{int(time.time())}{label[0]}"
    url = await fresh_database(settings.require_database_url(), "jobstream_bench_poison")
    s = settings.with_overrides(
        database_url=url, topic_prefix=f"poison{stamp}.", group_id=f"bench-poison-{stamp}"
    )
    topic = s.topic(CLAIMS_INBOUND_TOPIC)
    await ensure_topics(s, [topic])
    stream = ClaimsStream(seed=11)
    warm = stream.take(WARM_EVENTS)
    paced, poison = mixed(stream.take(n), ratio)
    engine = create_engine(s, pool_size=1)
    try:
        watcher = Watcher(engine, interval_s=0.02)
        with Process.jobstream("worker", settings_env(s), logs / f"poison-{label}.log") as proc:
            await publish_all(s, topic, warm)
            await watcher.until(sum(e.lifecycle for e in warm), STALL_S, proc.check)
            watcher.interval_s = 0.005
            skip = watcher.seen
            watch = asyncio.create_task(watcher.until(stream.lifecycle, STALL_S, proc.check))
            offered = await publish_paced(s, topic, paced, rate)
            await watch
        async with engine.connect() as conn:
            dead = (
                await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE topic LIKE '%.dlq'"))
            ).scalar_one()
            by_status: dict[str, int] = dict(
                (
                    await conn.execute(sa.text("SELECT status, count(*) FROM claims GROUP BY 1"))
                ).all()
            )
    finally:
        await engine.dispose()
    if by_status != dict(stream.statuses()) or dead != poison:
        raise AssertionError(f"{label}: states {by_status} / dead letters {dead} != {poison}")
    latencies = watcher.latencies(skip)
    p50, p95, p99 = (percentile(latencies, q) for q in (0.50, 0.95, 0.99))
    return Run(label, n, poison, offered, p50, p95, p99, dead)


def main(
    settings: Settings, events: int = 10_000, rate: float = 2_000, ratio: float = 0.01
) -> None:
    with bench_stack(settings, broker=True) as s:
        logs = Path(s.state_dir).resolve() / "bench" / "logs"
        runs = []
        for _ in range(2):  # interleaved, so a noisy moment does not favour one stream
            runs.append(asyncio.run(_one(s, "clean", events, rate, 0.0, logs)))
            runs.append(asyncio.run(_one(s, f"{ratio:.0%} poison", events, rate, ratio, logs)))
    clean = runs[0]
    table = Table(title=f"poison: valid events behind poison on their partitions ({machine()})")
    for col in (
        "stream",
        "valid",
        "poison",
        "offered/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p50 vs clean",
        "dead-lettered",
    ):
        table.add_column(col, justify="left" if col == "stream" else "right")
    for r in runs:
        table.add_row(
            r.label,
            f"{r.valid:,}",
            f"{r.poison:,}",
            f"{r.offered:,.0f}",
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            f"{r.p50 / clean.p50:.2f}×",
            f"{r.dead_lettered:,}",
        )
    console.print(table)
