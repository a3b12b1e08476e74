"""The relay: publishes outbox rows to Kafka in commit-safe id order, then marks them.

It never keeps an ``id > last_seen`` high-water mark: a row whose id was allocated
before a slower transaction committed becomes visible late with a lower id, and
selecting *unpublished* rows (a partial index keeps that cheap) picks it up. One
active relay per database, by advisory lock, keeps per-key order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine import metrics
from service.engine.locks import AdvisoryLock

log = logging.getLogger("jobstream.relay")

RELAY_LOCK = 7_420_001

SELECT_BATCH = sa.text(
    "SELECT id, topic, key, coalesce(value, convert_to(payload::text, 'UTF8')) AS body, "
    "headers::text AS headers, payload IS NOT NULL AS is_event, "
    "extract(epoch FROM created_at)::float8 AS created "
    "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT :limit"
)
MARK_PUBLISHED = sa.text(
    "UPDATE outbox SET published_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"
)
CONTENT_TYPE = ("content-type", b"application/cloudevents+json")

Message = tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]


class Publisher(Protocol):
    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send in order and return once the broker acknowledged every one."""


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0


class Relay:
    def __init__(self, engine: AsyncEngine, publisher: Publisher, settings: Settings) -> None:
        self.engine = engine
        self.publisher = publisher
        self.settings = settings
        self.stats = RelayStats()

    async def publish_batch(self) -> int:
        """Publish one batch of unpublished rows in id order; return how many."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(SELECT_BATCH, {"limit": self.settings.relay_batch_size})
            ).all()
            if not rows:
                return 0
            messages = []
            for row in rows:
                headers = [(k, str(v).encode()) for k, v in json.loads(row.headers).items()]
                if row.is_event:  # forwarded bytes keep exactly the headers they had
                    headers.insert(0, CONTENT_TYPE)
                key = row.key.encode() if row.key is not None else None
                messages.append((row.topic, bytes(row.body), key, headers))
            await self.publisher.send_many(messages)
            await conn.execute(MARK_PUBLISHED, {"ids": [row.id for row in rows]})
        now = time.time()
        for row in rows:
            metrics.RELAY_LATENCY.observe(max(0.0, now - row.created))
        metrics.RELAY_PUBLISHED.inc(len(rows))
        self.stats.published += len(rows)
        self.stats.batches += 1
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the relay lock (waiting as a standby) and publish until ``stop`` is set."""
        async with AdvisoryLock(self.engine, RELAY_LOCK, "relay", stop) as held:
            if not held:
                return
            delay = self.settings.relay_min_poll_s
            while not stop.is_set():
                try:
                    count = await self.publish_batch()
                except Exception:
                    log.exception("relay batch failed", extra={"action": "relay_error"})
                    count = 0
                    delay = self.settings.relay_max_poll_s
                if count >= self.settings.relay_batch_size:
                    continue  # a full batch: more is waiting
                if count:
                    delay = self.settings.relay_min_poll_s
                else:  # adaptive: back off while idle, snap back on the next row
                    delay = min(delay * 2, self.settings.relay_max_poll_s)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
