"""The relay: publishes outbox rows to Kafka in commit-safe id order, then marks them.

It never keeps an ``id > last_seen`` high-water mark: a row whose id was allocated
before a slower transaction committed becomes visible late with a lower id, and
selecting *unpublished* rows (a partial index keeps that cheap) picks it up. One
active relay per database, by advisory lock, keeps per-key order.

It wakes up by adaptive polling (``relay_wakeup="poll"``, the default: every
``relay_min_poll_s`` while rows keep coming, backing off to ``relay_max_poll_s``
when idle) or on a ``NOTIFY`` that the unit of work sends with each commit that
wrote outbox rows (``"notify"``; polling at ``relay_max_poll_s`` then only covers
writers that bypass the unit of work, such as jobs). ``jobstream bench relay``
measures both; the README's Performance section says why polling is the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine import metrics
from service.engine.faults import crash_point
from service.engine.kafka import ensure_topics
from service.engine.locks import AdvisoryLock
from service.engine.uow import OUTBOX_CHANNEL

log = logging.getLogger("jobstream.relay")

RELAY_LOCK = 7_420_001

SELECT_BATCH = sa.text(
    "SELECT id, topic, key, coalesce(value, convert_to(payload::text, 'UTF8')) AS body, "
    "headers::text AS headers, payload IS NOT NULL AS is_event, "
    "extract(epoch FROM created_at)::float8 AS created, event_id::text AS event_id, "
    "coalesce(payload->>'correlationid', headers->>'x-correlation-id') AS correlation_id "
    "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT :limit"
)
MARK_PUBLISHED = sa.text(
    # clock_timestamp(): the moment the broker had acked them, not when the batch began
    "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(CAST(:ids AS bigint[]))"
)
COUNT_BACKLOG = sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
LOCK_CHECK_S = 2.0
CONTENT_TYPE = ("content-type", b"application/cloudevents+json")

Message = tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]


class Publisher(Protocol):
    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send in order and return once the broker acknowledged every one."""


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0


class LockLost(Exception):
    """The relay's advisory-lock session died: another relay may be publishing now."""


class Relay:
    def __init__(self, engine: AsyncEngine, publisher: Publisher, settings: Settings) -> None:
        self.engine = engine
        self.publisher = publisher
        self.settings = settings
        self.stats = RelayStats()
        self._known_topics: set[str] = set()

    async def publish_batch(self, holds_lock: Callable[[], Awaitable[bool]] | None = None) -> int:
        """Publish one batch of unpublished rows in id order; return how many.

        ``holds_lock`` is asked right before the batch goes out: a relay whose lock
        session died must not publish beside the one that took over (per-key order).
        """
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(SELECT_BATCH, {"limit": self.settings.relay_batch_size})
            ).all()
            if not rows:
                return 0
            if holds_lock is not None and not await holds_lock():
                raise LockLost
            messages = []
            for row in rows:
                headers = [(k, str(v).encode()) for k, v in json.loads(row.headers).items()]
                if row.is_event:  # forwarded bytes keep exactly the headers they had
                    headers.insert(0, CONTENT_TYPE)
                key = row.key.encode() if row.key is not None else None
                messages.append((row.topic, bytes(row.body), key, headers))
            new = {m[0] for m in messages} - self._known_topics
            if new:  # create them with our partition count rather than rely on auto-creation
                await ensure_topics(self.settings, new)
                self._known_topics |= new
            await self.publisher.send_many(messages)
            crash_point(self.settings, "relay.after_publish")
            await conn.execute(MARK_PUBLISHED, {"ids": [row.id for row in rows]})
        now = time.time()
        for row in rows:
            metrics.RELAY_LATENCY.observe(max(0.0, now - row.created))
        metrics.RELAY_PUBLISHED.inc(len(rows))
        if log.isEnabledFor(logging.DEBUG):
            for row in rows:
                log.debug(
                    "published",
                    extra={
                        "action": "published",
                        "topic": row.topic,
                        "event_id": row.event_id,
                        "correlation_id": row.correlation_id,
                    },
                )
        self.stats.published += len(rows)
        self.stats.batches += 1
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the relay lock (waiting as a standby) and publish until ``stop`` is set."""
        while not stop.is_set():
            lock = AdvisoryLock(self.engine, RELAY_LOCK, "relay", stop)
            async with lock as held:
                if not held:
                    return
                await self._publish_while_held(lock, stop)

    async def _publish_while_held(self, lock: AdvisoryLock, stop: asyncio.Event) -> None:
        wake = asyncio.Event()  # set by a NOTIFY (notify mode) and by ``stop``
        stopping = asyncio.create_task(_set_when(stop, wake))
        try:
            async with self._listening(wake):
                await self._loop(lock, stop, wake)
        finally:
            stopping.cancel()

    async def _loop(self, lock: AdvisoryLock, stop: asyncio.Event, wake: asyncio.Event) -> None:
        notify = self.settings.relay_wakeup == "notify"
        delay = self.settings.relay_min_poll_s
        checked = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - checked > LOCK_CHECK_S:
                if not await lock.alive():
                    return  # another relay may hold it now; compete for it again
                checked = time.monotonic()
                await self._measure_backlog()
            wake.clear()  # a commit notified from here on is in this batch or wakes the next
            try:
                count = await self.publish_batch(lock.alive)
            except LockLost:
                return  # another relay may hold it now; compete for it again
            except Exception:
                log.exception("relay batch failed", extra={"action": "relay_error"})
                count = 0
                delay = self.settings.relay_max_poll_s
            if count >= self.settings.relay_batch_size:
                continue  # a full batch: more is waiting
            if notify:
                delay = self.settings.relay_max_poll_s  # a safety net; NOTIFY wakes us sooner
            elif count:
                delay = self.settings.relay_min_poll_s
            else:  # adaptive: back off while idle, snap back on the next row
                delay = min(delay * 2, self.settings.relay_max_poll_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)

    @contextlib.asynccontextmanager
    async def _listening(self, wake: asyncio.Event) -> AsyncIterator[None]:
        """In notify mode, LISTEN on a connection of its own for as long as we publish."""
        if self.settings.relay_wakeup != "notify":
            yield
            return
        async with self.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None

            def on_notify(*_: object) -> None:
                wake.set()

            await raw.add_listener(OUTBOX_CHANNEL, on_notify)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    await raw.remove_listener(OUTBOX_CHANNEL, on_notify)

    async def _measure_backlog(self) -> None:
        try:
            async with self.engine.connect() as conn:
                backlog = (await conn.execute(COUNT_BACKLOG)).scalar_one()
        except Exception:
            return
        metrics.OUTBOX_BACKLOG.set(backlog)


async def _set_when(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
