"""Poison flood: 1 % malformed and 1 % always-failing events mixed into a claim stream.

Every valid event must be applied, every bad one dead-lettered once with its class
(``non_retryable`` at once for the malformed, ``exhausted`` after every retry tier for
the failing), and no partition may stall behind a bad message: the source partitions
hand a failing message to its retry tier and flow on, and a retry tier holds a
partition only until its head is due. A sampler watches the committed offset of every
partition of the source topic (the worker's group) and of every retry tier (its
retry group) against the partition's end, and reports the longest time a partition
with messages waiting made no progress: a source partition is held to the last retry
delay plus 2 s, a retry tier's (which waits for its head by design) to plus 8 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.engine import topics
from tests.faults.checker import check
from tests.faults.conftest import size
from tests.faults.harness import Cluster, publish_stream, settle, until
from tests.faults.stream import FAIL_SOURCE, Entry, Stream, claim_stream

pytestmark = pytest.mark.integration

#: The workers' retry tiers here: the shape of the defaults (1, 2, 4, 8, 16 s), halved.
RETRY_DELAYS_S = [0.5, 1.0, 2.0, 4.0, 8.0]
#: What a stall may exceed the last retry delay by.
#: - source: one fetch, a batch split down to its bad messages, the offset commit and
#:   the sampling period, on a 2-core box that other test runs share. Last delay plus
#:   slack (10 s) stays well below the sum of the delays (15.5 s), the least a retry
#:   that blocks its partition would cost for each always-failing message.
#: - retry: a tier's partition waits for its head by design (up to the tier's delay),
#:   and one consumer serves every tier one message at a time (20-25 a second on this
#:   box, fewer under other runs' load), so a burst of due messages makes the last of
#:   them late: this bound says "not stuck", with room for that lateness (16.5 s was
#:   seen at a load average of 6 on 2 cores, with 250 events/s).
STALL_SLACK_S = {"source": 2.0, "retry": 8.0}
SAMPLE_S = 0.1


@dataclass
class _Partition:
    committed: int = 0
    #: since when it has had messages waiting without progress (None: caught up)
    since: float | None = None


@dataclass
class Stalls:
    """Per kind of partition: the longest no-progress-while-pending interval, and counts."""

    longest: dict[str, float] = field(default_factory=dict)
    worst: dict[str, str] = field(default_factory=dict)
    progressed: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    state: dict[TopicPartition, _Partition] = field(default_factory=dict, repr=False)

    def sample(
        self, kind: str, tp: TopicPartition, committed: int, end: int, now: float, prev: float
    ) -> None:
        p = self.state.setdefault(tp, _Partition())
        if committed != p.committed:  # progress: a stall (if any) ends here
            self.close(kind, tp, now)
            self.progressed[kind] = self.progressed.get(kind, 0) + 1
            p.committed = committed
            p.since = now if committed < end else None
        elif committed >= end:
            p.since = None
        elif p.since is None:  # messages arrived since the previous sample
            p.since = prev

    def close(self, kind: str, tp: TopicPartition, now: float) -> None:
        p = self.state[tp]
        if p.since is not None and now - p.since > self.longest.get(kind, 0.0):
            self.longest[kind] = now - p.since
            self.worst[kind] = f"{tp.topic}[{tp.partition}] at offset {p.committed}"


async def _tail(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
    """Read every record as it comes, keeping each partition's end (last offset + 1).

    Tansu answers ListOffsets(latest) with the base offset of a partition's last record
    batch plus one (see tests/helpers.topic_size), which would hide a partition that
    is part-way through its last batch; reading the records gives the true end.
    """
    while True:
        for tp, records in (await consumer.getmany(timeout_ms=100)).items():
            ends[tp] = max(ends.get(tp, 0), records[-1].offset + 1)


async def watch_stalls(
    settings: Settings, groups: dict[str, tuple[str, list[str]]], stop: asyncio.Event
) -> Stalls:
    """Sample committed vs end offsets every SAMPLE_S until ``stop``; kind -> (group, topics)."""
    stalls = Stalls()
    kafka = settings.require_kafka()
    parts = {
        kind: [TopicPartition(t, p) for t in names for p in range(settings.kafka_partitions)]
        for kind, (_, names) in groups.items()
    }
    tail = AIOKafkaConsumer(
        bootstrap_servers=kafka,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    # One client per group reads its committed offsets; none subscribes, so none joins.
    readers = {
        kind: AIOKafkaConsumer(bootstrap_servers=kafka, group_id=g)
        for kind, (g, _) in groups.items()
    }
    for client in (tail, *readers.values()):
        await client.start()
    every = [tp for tps in parts.values() for tp in tps]
    tail.assign(every)
    await tail.seek_to_beginning(*every)
    ends: dict[TopicPartition, int] = {}
    tailing = asyncio.create_task(_tail(tail, ends))
    prev = time.monotonic()
    try:
        while True:
            stopping = stop.is_set()
            now = time.monotonic()
            for kind, reader in readers.items():
                # (the tail may be a fetch behind: a stall is then seen that much later)
                committed = await asyncio.gather(*(reader.committed(tp) for tp in parts[kind]))
                for tp, at in zip(parts[kind], committed, strict=True):
                    stalls.sample(kind, tp, at or 0, ends.get(tp, 0), now, prev)
                    if stopping:  # still waiting at the end counts too
                        stalls.close(kind, tp, now)
            stalls.samples += 1
            prev = now
            if stopping:
                return stalls
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_S)
    finally:
        tailing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tailing
        for client in (tail, *readers.values()):
            await client.stop()


def spread(stream: Stream, seed: int) -> Stream:
    """The same stream with its bad entries evenly spaced through it.

    claim_stream's random merge picks among its queues uniformly, so the one-entry
    queues of the bad entries come out early: the first few thousand events would be
    ~7 % poison and the rest clean. A flood of 1 % means 1 % everywhere; a bad entry
    belongs to no claim's queue, so moving it keeps every claim's order.
    """
    rng = random.Random(seed)
    good = [e for e in stream.entries if e.kind == "valid"]
    bad = stream.bad
    rng.shuffle(bad)
    step = len(good) / (len(bad) + 1)
    entries: list[Entry] = []
    last = 0
    for i, entry in enumerate(bad, 1):
        at = round(i * step)
        entries += [*good[last:at], entry]
        last = at
    entries += good[last:]
    return Stream(entries, stream.expected, stream.valid)


async def committed_once(settings: Settings, group: str, topic: str) -> bool:
    """Has ``group`` committed an offset for every partition of ``topic``?"""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka(), group_id=group)
    await reader.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
        return all([await reader.committed(tp) for tp in parts])
    finally:
        await reader.stop()


async def dead_letter_classes(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT error_class, count(*) FROM dead_letters GROUP BY error_class")
        )
        return {r[0]: int(r[1]) for r in rows}


async def test_poison_flood_is_dead_lettered_without_stalling_a_partition(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    stream = spread(claim_stream(size(2_000, 20_000), seed=31, malformed=0.01, failing=0.01), 3)
    malformed = sum(e.kind == "malformed" for e in stream.entries)
    failing = sum(e.kind == "failing" for e in stream.entries)
    last_delay = RETRY_DELAYS_S[-1]
    cluster.start("relay")
    cluster.start("worker", fault_fail_source=FAIL_SOURCE, retry_delays_s=RETRY_DELAYS_S)
    source = settings.topic(CLAIMS_INBOUND_TOPIC)
    tiers = [
        topics.retry(settings, CLAIMS_INBOUND_TOPIC, n)
        for n in range(1, len(settings.retry_delays_s) + 1)
    ]
    groups = {
        "source": (settings.group_id, [source]),
        "retry": (f"{settings.group_id}.retry", tiers),
    }

    async def started() -> bool:  # every source partition has moved once: the worker is up
        return await committed_once(settings, settings.group_id, source)

    # About 200 events/s. Each failing event makes five retry-tier deliveries, which
    # the tier consumer takes one at a time (20-25/s on a busy 2-core box): at 500/s
    # it would be saturated and the tiers would fall behind by growing seconds, a
    # capacity limit rather than a block, which this measure would still count.
    producer = asyncio.create_task(
        publish_stream(settings, stream.entries, per_second=len(stream) / size(10, 100))
    )
    await until(
        started, timeout=120, what="every source partition committed", cluster=cluster, interval=0.5
    )
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_stalls(settings, groups, stop))
    await producer

    try:
        await settle(engine, settings, stream, timeout=240, cluster=cluster)
    finally:
        stop.set()
        stalls = await watcher
    verdict = await check(engine, settings, stream)
    classes = await dead_letter_classes(engine)
    figures(
        **verdict.figures,
        malformed=malformed,
        failing=failing,
        **{f"dead_{k}": v for k, v in sorted(classes.items())},
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated),
        unexpected=len(verdict.unexpected),
        longest_stall_s=round(stalls.longest.get("source", 0.0), 2),
        longest_retry_stall_s=round(stalls.longest.get("retry", 0.0), 2),
        stall_limit_s=last_delay + STALL_SLACK_S["source"],
        retry_stall_limit_s=last_delay + STALL_SLACK_S["retry"],
        samples=stalls.samples,
    )
    assert verdict.ok, str(verdict)
    assert classes == {"non_retryable": malformed, "exhausted": failing}, classes
    # The sampler saw both kinds of partition move: the measurement is not vacuous.
    assert stalls.progressed.get("source", 0) > 0 and stalls.progressed.get("retry", 0) > 0
    for kind in ("source", "retry"):
        assert stalls.longest.get(kind, 0.0) < last_delay + STALL_SLACK_S[kind], (
            f"{kind} partition {stalls.worst.get(kind)} stalled {stalls.longest[kind]:.2f}s",
            cluster.report(),
        )
