"""The relay never skips a row whose id was allocated before a slower commit."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.db.migrate import ensure_at_head
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.locks import AdvisoryLock
from service.engine.outbox import LockLost, Relay
from service.errors import ConfigError
from tests.helpers import consume_all

pytestmark = pytest.mark.integration

INSERT = sa.text(
    "INSERT INTO outbox (event_id, topic, key, payload) VALUES (:id, :topic, :key, "
    "CAST(:payload AS jsonb)) RETURNING id"
)


async def test_lower_id_committed_later_is_still_published(
    settings: Settings, engine: AsyncEngine
) -> None:
    topic = settings.topic("race.out")
    await ensure_topics(settings, [topic])
    publisher = KafkaPublisher(settings)
    await publisher.start()
    relay = Relay(engine, publisher, settings)
    try:
        slow = await engine.connect()
        slow_tx = await slow.begin()
        low_id = (
            await slow.execute(
                INSERT, {"id": str(uuid.uuid4()), "topic": topic, "key": "a", "payload": '{"n": 1}'}
            )
        ).scalar_one()
        async with engine.begin() as fast:
            high_id = (
                await fast.execute(
                    INSERT,
                    {"id": str(uuid.uuid4()), "topic": topic, "key": "b", "payload": '{"n": 2}'},
                )
            ).scalar_one()
        assert low_id < high_id

        assert await relay.publish_batch() == 1  # only the committed, higher id is visible
        await slow_tx.commit()
        await slow.close()
        assert await relay.publish_batch() == 1  # the late, lower id is not skipped
        assert await relay.publish_batch() == 0
    finally:
        await publisher.stop()
    records = await consume_all(settings, topic, 2)
    assert sorted(json.loads(r.value)["n"] for r in records) == [1, 2]


async def test_a_relay_that_lost_its_lock_publishes_nothing(
    settings: Settings, engine: AsyncEngine
) -> None:
    topic = settings.topic("lost.out")
    await ensure_topics(settings, [topic])
    async with engine.begin() as conn:
        await conn.execute(
            INSERT, {"id": str(uuid.uuid4()), "topic": topic, "key": "a", "payload": "{}"}
        )
    publisher = KafkaPublisher(settings)
    await publisher.start()
    relay = Relay(engine, publisher, settings)
    asked: list[bool] = []

    async def lost() -> bool:
        asked.append(False)
        return False

    async def held() -> bool:
        return True

    try:
        with pytest.raises(LockLost):
            await relay.publish_batch(lost)
        assert asked == [False]  # asked once, right before sending
        assert await relay.publish_batch(held) == 1  # the row was left for the lock holder
    finally:
        await publisher.stop()


async def test_one_lock_holder_and_a_standby_takes_over(engine: AsyncEngine) -> None:
    first = AdvisoryLock(engine, 4242, "test", asyncio.Event())
    assert await first.__aenter__()
    second = AdvisoryLock(engine, 4242, "test", asyncio.Event(), retry_s=0.05)
    standby = asyncio.create_task(second.__aenter__())
    done, _ = await asyncio.wait({standby}, timeout=0.5)
    assert not done  # the standby keeps waiting while the first holds the lock
    await first.__aexit__(None, None, None)
    assert await asyncio.wait_for(standby, timeout=5)  # and takes over once it is released
    await second.__aexit__(None, None, None)


async def test_refuses_an_unmigrated_database(stack: tuple[str, str]) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(stack[0])
    try:
        with pytest.raises(ConfigError, match="jobstream migrate"):
            await ensure_at_head(engine)
    finally:
        await engine.dispose()
