"""Rebalance: three workers in one group, one SIGKILLed and one added mid-stream.

The claims topic has more partitions (6) than workers. A worker killed mid-batch
leaves its partitions to the others once its session times out; the batch it had
taken is redelivered to their new owner, and whatever it had committed in
PostgreSQL is dropped by the inbox. A worker added mid-stream takes a share in the
next rebalance; the batches the others had in flight when they were revoked are
redelivered too. No effect may be lost or doubled. The scenario also measures how
long partitions stood still around each rebalance (the group's committed offsets,
sampled throughout): the recovery time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from tests.faults.checker import check
from tests.faults.conftest import size
from tests.faults.harness import Cluster, Process, processed, publish_stream, settle, until
from tests.faults.stream import claim_stream

pytestmark = pytest.mark.integration

PARTITIONS = 6


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """More partitions than workers; the cluster fixture creates the topic with these."""
    return settings.with_overrides(kafka_partitions=PARTITIONS)


@dataclass
class Progress:
    """The group's committed offset and the end offset of each claims partition, sampled."""

    samples: list[tuple[float, dict[int, int], dict[int, int]]] = field(default_factory=list)

    def stall(self, since: float, until_t: float) -> float:
        """The longest time in [since, until_t] that a partition with a backlog stood still."""
        worst = 0.0
        for p in range(PARTITIONS):
            last_move, last_offset = since, None
            for t, committed, ends in self.samples:
                if t < since or t > until_t:
                    continue
                offset = committed.get(p, -1)
                if last_offset is not None and offset != last_offset:
                    last_move = t
                last_offset = offset
                if offset >= ends.get(p, 0):  # caught up: nothing to wait for
                    last_move = t
                worst = max(worst, t - last_move)
        return worst


@contextlib.asynccontextmanager
async def sampling(settings: Settings, every: float = 0.2) -> AsyncIterator[Progress]:
    """Sample the group's progress on the claims topic until the block ends."""
    topic = settings.topic(CLAIMS_INBOUND_TOPIC)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.require_kafka(),
        group_id=settings.group_id,  # never subscribes: reads the group's commits only
        enable_auto_commit=False,
    )
    await reader.start()
    progress = Progress()

    async def sample() -> None:
        while True:
            with contextlib.suppress(Exception):  # a sample lost during a rebalance is fine
                ends = await reader.end_offsets(tps)
                committed = {tp.partition: await reader.committed(tp) or 0 for tp in tps}
                progress.samples.append(
                    (time.monotonic(), committed, {tp.partition: n for tp, n in ends.items()})
                )
            await asyncio.sleep(every)

    task = asyncio.create_task(sample())
    try:
        yield progress
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await reader.stop()


def assigned(proc: Process, group: str) -> list[int]:
    """Partition counts of each assignment ``proc`` received in ``group`` (JSON log)."""
    counts = []
    for line in proc.log.read_text(errors="replace").splitlines():
        if '"assigned"' in line and line.startswith("{"):
            record = json.loads(line)
            if record.get("action") == "assigned" and record.get("group") == group:
                counts.append(int(record["partitions"]))
    return counts


async def test_three_workers_one_killed_one_added_lose_and_double_nothing(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    stream = claim_stream(size(3_000, 20_000), seed=31)
    valid = len(stream.valid)
    cluster.env["log_json"] = True
    cluster.start("relay")
    workers = [cluster.start("worker") for _ in range(3)]
    group = settings.group_id

    async def all_joined() -> bool:
        return all(assigned(w, group) for w in workers)

    await until(all_joined, timeout=120, what="three workers in the group", cluster=cluster)
    rate = len(stream) / size(16, 60)
    cut = len(stream) * 85 // 100
    joined = asyncio.Event()
    waited = []

    async def produce() -> None:
        """The stream at a steady rate, so both rebalances happen while it flows; on a slow
        machine its last 15 % waits for the added worker, so that it gets a share."""
        await publish_stream(settings, stream.entries[:cut], per_second=rate)
        waited.append(not joined.is_set())
        await asyncio.wait_for(joined.wait(), 180)
        await publish_stream(settings, stream.entries[cut:], per_second=rate)

    async with sampling(settings) as progress:
        began = time.monotonic()
        producer = asyncio.create_task(produce())

        async def reached(mark: int) -> bool:
            return await processed(engine) >= mark

        await until(lambda: reached(valid // 5), timeout=120, what="20 % applied", cluster=cluster)
        victim = workers[1]
        victim.kill()
        killed_at, killed_time = await processed(engine), time.monotonic()
        await until(lambda: reached(valid * 35 // 100), timeout=180, what="35 %", cluster=cluster)
        added_at, added_time = await processed(engine), time.monotonic()
        newcomer = cluster.start("worker", "worker-4")

        async def newcomer_in() -> bool:
            return bool(assigned(newcomer, group))

        await until(newcomer_in, timeout=180, what="the added worker in the group", cluster=cluster)
        joined.set()
        join_s = time.monotonic() - added_time
        await producer

        await settle(engine, settings, stream, timeout=size(150, 900), cluster=cluster)
        settled_time = time.monotonic()
    verdict = await check(engine, settings, stream)
    kill_stall = progress.stall(killed_time, added_time)
    join_stall = progress.stall(added_time, settled_time)
    newcomer_share = assigned(newcomer, group)
    figures(
        **verdict.figures,
        workers=f"3-1+1 on {PARTITIONS} partitions",
        kills=1,
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated),
        unexpected=len(verdict.unexpected),
        recovery_after_kill_s=round(kill_stall, 1),
        recovery_after_join_s=round(join_stall, 1),
        join_s=round(join_s, 1),
        stream_waited_for_join=waited == [True],
        samples=len(progress.samples),
        run_s=round(settled_time - began, 1),
    )
    assert killed_at < added_at < valid, f"faults not mid-stream: {killed_at}, {added_at}"
    assert newcomer_share and newcomer_share[-1] > 0, "the added worker never got partitions"
    assert verdict.ok, str(verdict)
