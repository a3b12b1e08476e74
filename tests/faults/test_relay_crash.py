"""Relay crash: SIGKILL the relay at random moments while it drains a large outbox.

The relay publishes a batch and then marks it published; a kill between the two
makes the next relay publish that batch again, and nothing else goes twice or goes
missing. A downstream consumer of the outbound topic must see every outbox event at
least once, exactly once after dropping repeats by event id, and the events of
each key in outbox-id order.

The rows are written by the real release-orphaned job, several rounds over the same
claims, so each key has several rows. The relay drains about 10,000 rows a second
here, so it runs with batches smaller than the default (more batches to be killed
in), and a kill that comes too late to land mid-stream is not counted: the test
adds a round of rows and kills again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.workflows.claims.jobs import OUT_TOPIC
from tests.faults.checker import deliveries
from tests.faults.conftest import size
from tests.faults.harness import Cluster, release_rounds, until
from tests.helpers import scalar, topic_size

pytestmark = pytest.mark.integration

ROUNDS = 5  # outbox rows per key
BATCH = 250


async def published(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"))


async def test_relay_killed_mid_batch_delivers_every_event_once_in_key_order(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    claims = size(1_000, 10_000)
    kills = size(3, 6)
    rng = random.Random(3)
    rows = await release_rounds(engine, settings, claims, ROUNDS)
    topic = settings.topic(OUT_TOPIC)
    cluster.env["relay_batch_size"] = BATCH  # for every start and restart
    relay = cluster.start("relay")
    extra = 0  # records in the topic beyond the rows marked published: repeats to come
    mid_stream = mid_batch = attempts = rounds = 0
    recoveries: list[float] = []
    while mid_stream < kills or not mid_batch:
        attempts += 1
        assert attempts <= 4 * kills, f"{mid_stream} kills mid-stream, {mid_batch} mid-batch"
        before = await published(engine)
        if before >= rows:  # the last kill came after the end: give the relay more to do
            rows += await release_rounds(engine, settings, claims, 1, first_round=ROUNDS + rounds)
            rounds += 1
        started = time.monotonic()

        async def moving(before: int = before) -> bool:
            return await published(engine) > before

        await until(
            moving, timeout=120, what="the relay publishing", cluster=cluster, interval=0.01
        )
        if attempts > 1:
            recoveries.append(time.monotonic() - started)
        await asyncio.sleep(rng.uniform(0, 0.05))  # a random moment, not a synchronisation
        relay.kill()
        at = await published(engine)
        in_topic = await topic_size(settings, topic)
        if at < rows:
            mid_stream += 1
        if in_topic - at > extra:  # sent, not marked: this kill landed inside a batch
            mid_batch += 1
        extra = in_topic - at
        relay = cluster.restart(relay)

    async def drained() -> bool:
        return await published(engine) >= rows

    await until(drained, timeout=300, what="every outbox row published", cluster=cluster)
    seen = await deliveries(engine, settings, topic, timeout=300)
    figures(
        **seen.figures,
        keys=claims,
        kills=attempts,
        kills_mid_stream=mid_stream,
        kills_mid_batch=mid_batch,
        recovery_max_s=round(max(recoveries), 1),
    )
    assert seen.rows == rows
    assert seen.ok, str(seen)
    assert seen.duplicates, "a kill inside a batch must show as repeats downstream"
