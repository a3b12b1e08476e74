"""Outbox commit-order race, against the real relay process.

Transaction T1 takes a lower outbox id and commits after T2, which took a higher
one; meanwhile the relay may already have published T2's row. A relay that kept an
``id > last_seen`` high-water mark would skip T1's row for ever; ours selects
unpublished rows, so it must publish both. tests/integration/test_relay.py shows it
once, step by step, with an in-process relay; here it is a real race repeated many
times: several lanes run rounds at once, and each round either holds T1 until the
relay has published T2's row, or commits T1 after a random few milliseconds.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine.kafka import ensure_topics
from tests.faults.checker import deliveries
from tests.faults.conftest import size
from tests.faults.harness import Cluster, until
from tests.helpers import scalar

pytestmark = pytest.mark.integration

LANES = 4
INSERT = sa.text(
    "INSERT INTO outbox (event_id, topic, key, payload) VALUES (:id, :topic, :key, "
    "CAST(:payload AS jsonb)) RETURNING id"
)


def _row(topic: str, key: str) -> dict[str, str]:
    event_id = str(uuid.uuid4())
    return {"id": event_id, "topic": topic, "key": key, "payload": f'{{"id": "{event_id}"}}'}


async def test_a_lower_id_committed_after_a_published_higher_one_is_published(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    rounds = size(20, 500)
    topic = settings.topic("race.out")
    await ensure_topics(settings, [topic])
    cluster.start("relay")
    rng = random.Random(9)
    plans = [rng.random() < 0.5 for _ in range(rounds)]  # True: hold T1 until T2 is out
    delays = [rng.uniform(0, 0.03) for _ in range(rounds)]
    overtaken: list[bool] = [False] * rounds

    async def is_published(row_id: int) -> bool:
        return bool(
            await scalar(
                engine, "SELECT published_at IS NOT NULL FROM outbox WHERE id = :id", id=row_id
            )
        )

    async def race(n: int) -> None:
        async with engine.connect() as slow:
            t1 = await slow.begin()
            low = (await slow.execute(INSERT, _row(topic, f"t1-{n}"))).scalar_one()
            async with engine.begin() as fast:
                high = (await fast.execute(INSERT, _row(topic, f"t2-{n}"))).scalar_one()
            assert low < high
            if plans[n]:

                async def out(high: int = high) -> bool:
                    return await is_published(high)

                await until(out, timeout=60, what=f"T2 of round {n} published", cluster=cluster)
            else:
                await asyncio.sleep(delays[n])  # a random moment, not a synchronisation
            overtaken[n] = await is_published(high)
            await t1.commit()

    async def lane(first: int) -> None:
        for n in range(first, rounds, LANES):
            await race(n)

    await asyncio.gather(*(lane(i) for i in range(LANES)))

    async def drained() -> bool:
        left = await scalar(engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return left == 0

    await until(drained, timeout=120, what="every outbox row published", cluster=cluster)
    seen = await deliveries(engine, settings, topic)
    figures(
        rounds=rounds,
        overtaken=sum(overtaken),
        rows=seen.rows,
        records_seen=seen.records,
        lost=len(seen.lost),
        duplicated=seen.duplicates,
        unexpected=len(seen.unexpected),
    )
    assert all(overtaken[n] for n in range(rounds) if plans[n]), "T2 was not out before T1"
    assert seen.rows == 2 * rounds
    assert seen.ok, str(seen)
    assert seen.duplicates == 0  # nobody killed the relay: no repeats
