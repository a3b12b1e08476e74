"""Publishing at full speed or at a fixed rate, and watching commits land in PostgreSQL.

Commit time is when a row becomes visible to another session: a watcher polls
``event_log`` for rows past the highest id it has seen. That is exact here because
each consumer under test commits one transaction after another (ids grow in commit
order); a row that became visible out of id order would be missed, and the count
check at the end of each mode would fail instead of a figure being wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.claims_stream import Event, now
from service.config import Settings
from service.engine.kafka import producer_options

NEW_ROWS = sa.text(
    "SELECT id, extract(epoch FROM occurred_at)::float8 AS at FROM event_log "
    "WHERE id > :hw ORDER BY id"
)
TICK_S = 0.005


async def publish_all(settings: Settings, topic: str, events: Sequence[Event]) -> float:
    """Send every event without pacing; seconds until the broker acked the last one."""
    producer = AIOKafkaProducer(**{**producer_options(settings), "linger_ms": 20})
    await producer.start()
    try:
        started = time.perf_counter()
        at = now()
        futures = [await producer.send(topic, e.encode(at), key=e.key.encode()) for e in events]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def publish_paced(
    settings: Settings, topic: str, events: Sequence[Event], rate: float
) -> float:
    """Send at ``rate`` events/s; each event's ``time`` is the moment it was handed over."""
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        futures = []
        started = time.monotonic()
        sent = 0
        while sent < len(events):
            due = min(len(events), int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                event = events[sent]
                futures.append(
                    await producer.send(topic, event.encode(now()), key=event.key.encode())
                )
                sent += 1
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*futures)
        return len(events) / (time.monotonic() - started)
    finally:
        await producer.stop()


@dataclass
class Watcher:
    """Polls ``event_log``; records when each row was first seen and its event ``time``."""

    engine: AsyncEngine
    interval_s: float = 0.005
    seen: int = 0
    #: (seen at, published at) per row, wall clock
    samples: list[tuple[float, float]] = field(default_factory=list)
    #: (polled at, rows seen so far) per poll
    progress: list[tuple[float, int]] = field(default_factory=list)
    _hw: int = 0

    async def poll(self) -> int:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(NEW_ROWS, {"hw": self._hw})).all()
        at = time.time()
        if rows:
            self._hw = rows[-1].id
            self.seen += len(rows)
            self.samples.extend((at, row.at) for row in rows)
        self.progress.append((at, self.seen))
        return len(rows)

    async def until(self, count: int, stall_s: float, alive: object = None) -> None:
        """Poll until ``count`` rows were seen in total; fail after ``stall_s`` without progress."""
        last_progress = time.monotonic()
        while self.seen < count:
            if await self.poll():
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > stall_s:
                raise AssertionError(f"only {self.seen} of {count} rows committed; stalled")
            if callable(alive):
                alive()
            await asyncio.sleep(self.interval_s)

    def rate(self) -> float:
        """Rows per second so far, from the last poll that saw none to the first that saw all.

        Starting at the last empty poll (not the first that found rows) keeps a
        backlog committed within one poll interval from counting as infinitely fast.
        """
        points = self.progress
        first = next((i for i, (_, n) in enumerate(points) if n > 0), None)
        if first is None:
            return float("nan")
        t0, n0 = points[first - 1] if first else points[first]
        t1, n1 = next(p for p in points if p[1] == self.seen)
        return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")

    def latencies(self, skip: int) -> list[float]:
        """Seconds from publish to commit of every row after the first ``skip``."""
        return [seen - published for seen, published in self.samples[skip:]]
