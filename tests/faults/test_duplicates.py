"""Duplicates and replays: copies of a settled stream change nothing in the database.

A stream (with a few malformed and always-failing events) is applied and settles;
the database is snapshotted. Then 10 % of its valid events are published again, and
one partition of the source topic is consumed again from offset 0 (the worker is
stopped, its group's offset for that partition is committed back to 0, the worker
is started again): every valid event there is redelivered, and so is every bad one,
whose dead-lettering must not happen twice nor leave anything behind. Once all of it
has been consumed the database must be exactly the snapshot.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.engine import topics
from tests.faults.checker import check
from tests.faults.conftest import size
from tests.faults.harness import Cluster, publish_stream, settle, until
from tests.faults.stream import FAIL_SOURCE, claim_stream
from tests.helpers import topic_size

pytestmark = pytest.mark.integration

#: Every table a redelivery could touch, whole rows.
TABLES = (
    "claims",
    "members",
    "tasks",
    "event_log",
    "outbox",
    "processed_messages",
    "dead_letters",
    "parked_keys",
    "parked_messages",
)

Snapshot = dict[str, set[tuple[Any, ...]]]


def _frozen(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every row of every table in TABLES (JSON columns as sorted text, to compare as sets)."""
    async with engine.connect() as conn:
        return {
            t: {
                tuple(_frozen(v) for v in row)
                for row in await conn.execute(sa.text(f"SELECT * FROM {t}"))
            }
            for t in TABLES
        }


def changes(before: Snapshot, after: Snapshot) -> dict[str, int]:
    """Rows added or removed (a changed row counts twice), per table that changed."""
    diff = {t: len(before[t] ^ after[t]) for t in TABLES}
    return {t: n for t, n in diff.items() if n}


async def offsets(settings: Settings, group: str, names: list[str]) -> tuple[int, int]:
    """(committed, end) summed over every partition of ``names`` for ``group``.

    The end is read off the records (topic_size), not ListOffsets, which Tansu answers
    short of a partition's last record batch.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka(), group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in names for p in range(settings.kafka_partitions)]
        committed = [await consumer.committed(tp) or 0 for tp in tps]
    finally:
        await consumer.stop()
    return sum(committed), sum([await topic_size(settings, name) for name in names])


async def consumed_everything(settings: Settings, engine: AsyncEngine) -> bool:
    """Every group is at the end of its topics and the outbox is empty (twice in a row)."""
    gid = settings.group_id
    source = settings.topic(CLAIMS_INBOUND_TOPIC)
    tiers = [
        topics.retry(settings, CLAIMS_INBOUND_TOPIC, n)
        for n in range(1, len(settings.retry_delays_s) + 1)
    ]
    dlq = [topics.dlq(settings, CLAIMS_INBOUND_TOPIC)]
    for _ in range(2):  # a tier message can make a new outbox row after the outbox check
        for group, names in ((gid, [source]), (f"{gid}.retry", tiers), (f"{gid}.dlq-index", dlq)):
            done, end = await offsets(settings, group, names)
            if done < end:
                return False
        async with engine.connect() as conn:
            waiting = await conn.scalar(
                sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )
        if waiting:
            return False
    return True


def partition_of(key: str, settings: Settings) -> int:
    """The partition the producer's default partitioner gives ``key`` (murmur2, as Kafka's)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % settings.kafka_partitions


async def rewind(settings: Settings, tp: TopicPartition, cluster: Cluster) -> None:
    """Commit offset 0 for ``tp`` in the worker's group, as a member of that group.

    The worker is stopped, so this consumer joins the group alone and is assigned
    every partition; it commits offset 0 for ``tp`` only, and leaves. (The embedded
    broker refuses commits from outside a group's membership.)
    """
    consumer = AIOKafkaConsumer(
        tp.topic,
        bootstrap_servers=settings.require_kafka(),
        group_id=settings.group_id,
        enable_auto_commit=False,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    await consumer.start()

    async def assigned() -> bool:
        await consumer.getmany(timeout_ms=100)  # joins the group; nothing is committed
        return tp in consumer.assignment()

    try:
        await until(assigned, timeout=60, what=f"{tp} assigned to the rewinder", cluster=cluster)
        await consumer.commit({tp: 0})
        assert await consumer.committed(tp) == 0
    finally:
        await consumer.stop()


async def test_republished_and_reconsumed_messages_change_nothing(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    stream = claim_stream(size(2_000, 20_000), seed=41, malformed=0.005, failing=0.005)
    rng = random.Random(43)
    cluster.start("relay")
    worker = cluster.start("worker", fault_fail_source=FAIL_SOURCE)
    await publish_stream(settings, stream.entries)

    await settle(engine, settings, stream, timeout=240, cluster=cluster)
    first = await check(engine, settings, stream)
    assert first.ok, str(first)
    before = await snapshot(engine)

    # Consume again, from its start, the partition with the most bad entries: stop the
    # worker, rewind its group there, start it again.
    source = settings.topic(CLAIMS_INBOUND_TOPIC)
    on = [
        [e for e in stream.entries if partition_of(e.key, settings) == p]
        for p in range(settings.kafka_partitions)
    ]
    p = max(range(settings.kafka_partitions), key=lambda p: sum(e.kind != "valid" for e in on[p]))
    tp = TopicPartition(source, p)
    again = {kind: sum(e.kind == kind for e in on[p]) for kind in ("valid", "malformed", "failing")}
    assert worker.stop() == 0, cluster.report()
    await rewind(settings, tp, cluster)
    worker = cluster.restart(worker, fault_fail_source=FAIL_SOURCE)
    # ...and meanwhile publish 10 % of the valid events a second time.
    valid = [e for e in stream.entries if e.kind == "valid"]
    copies = rng.sample(valid, len(valid) // 10)
    await publish_stream(settings, copies)

    async def everything_consumed() -> bool:
        return await consumed_everything(settings, engine)

    await until(
        everything_consumed, timeout=240, what="the copies consumed", cluster=cluster, interval=0.5
    )
    after = await snapshot(engine)
    changed = changes(before, after)
    verdict = await check(engine, settings, stream)
    figures(
        events=len(stream),
        republished=len(copies),
        reconsumed=sum(again.values()),
        reconsumed_malformed=again["malformed"],
        reconsumed_failing=again["failing"],
        changes=sum(changed.values()),
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated),
        unexpected=len(verdict.unexpected),
    )
    assert again["malformed"] and again["failing"], f"partition {p} lacks bad entries: {again}"
    assert not changed, f"the copies changed {changed}"
    assert verdict.ok, str(verdict)
