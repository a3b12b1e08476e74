"""The relay: publishes outbox rows to Kafka in commit-safe id order, then marks them.

It never keeps an ``id > last_seen`` high-water mark: a row whose id was allocated
before a slower transaction committed becomes visible late with a lower id, and
selecting *unpublished* rows (a partial index keeps that cheap) picks it up. One
active relay per database, by advisory lock, keeps per-key order.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine.locks import AdvisoryLock
from service.engine.processing import Publisher

log = logging.getLogger("jobstream.relay")

RELAY_LOCK = 7_420_001

SELECT_BATCH = sa.text(
    "SELECT id, topic, key, payload::text AS payload, headers::text AS headers "
    "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT :limit"
)
MARK_PUBLISHED = sa.text(
    "UPDATE outbox SET published_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"
)
CONTENT_TYPE = ("content-type", b"application/cloudevents+json")


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
        import json

        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(SELECT_BATCH, {"limit": self.settings.relay_batch_size})
            ).all()
            if not rows:
                return 0
            messages = []
            for row in rows:
                headers = [
                    CONTENT_TYPE,
                    *((k, str(v).encode()) for k, v in json.loads(row.headers).items()),
                ]
                key = row.key.encode() if row.key is not None else None
                messages.append((row.topic, row.payload.encode(), key, headers))
            send_many = getattr(self.publisher, "send_many", None)
            if send_many is not None:
                await send_many(messages)
            else:
                for message in messages:
                    await self.publisher.send(*message)
            await conn.execute(MARK_PUBLISHED, {"ids": [row.id for row in rows]})
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
