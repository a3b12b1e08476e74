"""Test helpers: build events, publish them, consume a topic, poll with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import CloudEvent, make
from service.config import Settings
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.worker import Worker
from service.engine.workflow import Workflow

T = TypeVar("T")


def event(
    cls: type[CloudEvent], time: datetime | None = None, id: str | None = None, **data: Any
) -> CloudEvent:
    return make(cls, time or datetime.now(UTC), source="/tests", event_id=id, **data)


async def publish(
    settings: Settings, topic: str, events: Iterable[CloudEvent | bytes], key: str | None = None
) -> None:
    pub = KafkaPublisher(settings)
    await pub.start()
    try:
        await pub.send_many(
            (
                settings.topic(topic),
                e if isinstance(e, bytes) else e.to_json(),
                (key or ("k" if isinstance(e, bytes) else e.key)).encode(),
                [],
            )
            for e in events
        )
    finally:
        await pub.stop()


async def wait_for(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 30,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


async def consume_all(
    settings: Settings, topic: str, count: int, timeout: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``count`` records from the start of ``topic`` (no group, all partitions)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.require_kafka(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                records.extend(msgs)
    finally:
        await consumer.stop()
    return records


@contextlib.asynccontextmanager
async def running(
    settings: Settings, engine: AsyncEngine, workflows: list[Workflow] | None = None
) -> AsyncIterator[Worker]:
    """A worker and a relay on the real broker and database until the block ends."""
    from service.app import Runtime
    from service.engine.outbox import Relay

    rt = Runtime(settings, engine)
    worker = Worker(settings, engine, workflows or rt.workflows)
    await worker.start()
    await ensure_topics(settings, rt.outbound_topics())
    publisher = KafkaPublisher(settings)
    await publisher.start()
    stop = asyncio.Event()
    relay = asyncio.create_task(Relay(engine, publisher, settings).run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await relay
        await publisher.stop()
        await worker.stop()


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


async def topic_size(settings: Settings, topic: str) -> int:
    """How many records ``topic`` holds (0 if it does not exist).

    Tansu 0.6 answers ListOffsets(latest) with the base offset of the partition's last
    record batch plus one, not the offset after its last record; so the end is read
    off that last batch itself.
    """
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka(), group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps) if tps else {}
        last = {tp: end - 1 for tp, end in ends.items() if end > 0}
        if not last:
            return 0
        consumer.assign(list(last))
        for tp, offset in last.items():
            consumer.seek(tp, offset)
        exact = dict.fromkeys(last, 0)
        deadline = time.monotonic() + 30
        while min(exact.values()) == 0 and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                exact[tp] = max(exact[tp], *(r.offset + 1 for r in records))
        assert min(exact.values()) > 0, f"could not read the last batch of {topic}"
        return sum(exact.values())
    finally:
        await consumer.stop()


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``jobstream ARGS`` in a subprocess against the test's database and broker."""
    import os
    import sys

    env = {
        **os.environ,
        "JOBSTREAM_DATABASE_URL": settings.require_database_url(),
        "JOBSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "JOBSTREAM_KAFKA_IDEMPOTENT_PRODUCER": "false",
        "JOBSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "JOBSTREAM_GROUP_ID": settings.group_id,
        "COLUMNS": "250",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@contextlib.asynccontextmanager
async def served_api(settings: Settings, engine: AsyncEngine) -> AsyncIterator[str]:
    """The API served by uvicorn on a free port; yields its base URL."""
    import httpx

    from service.app import Runtime, serve
    from service.embedded import free_port

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(Runtime(settings.with_overrides(api_port=port), engine), {"api"}, stop)
    )
    base = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(f"{base}/health/live")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_for(up, what="API listening")
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
