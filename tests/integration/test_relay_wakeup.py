"""relay_wakeup=notify: a unit of work's commit wakes the relay without waiting for a poll."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_OUTBOUND_TOPIC, ClaimTimeoutReleased
from service.config import Settings
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.outbox import Relay
from service.engine.uow import UnitOfWork
from tests.helpers import scalar, wait_for

pytestmark = pytest.mark.integration


def _released() -> ClaimTimeoutReleased:
    return ClaimTimeoutReleased.model_validate(
        {
            "id": str(uuid.uuid4()),
            "source": "/tests",
            "time": datetime.now(UTC),
            "data": {
                "claim_id": "c1",
                "task_id": "t1",
                "reviewer_id": "m1",
                "days_orphaned": 8,
                "timeout_threshold_days": 7,
                "trigger": "manual",
            },
        }
    )


@pytest.mark.parametrize("wakeup", ["notify", "poll"])
async def test_a_commit_is_published_long_before_the_next_idle_poll(
    settings: Settings, engine: AsyncEngine, wakeup: str
) -> None:
    # In notify mode the relay sleeps relay_max_poll_s (30 s here) after each batch:
    # only the NOTIFY sent with the commit can get the row out within 5 s. In poll
    # mode a row soon after the last one is found within the first backoff steps.
    s = settings.with_overrides(relay_wakeup=wakeup, relay_max_poll_s=30.0, relay_min_poll_s=0.01)
    await ensure_topics(s, [s.topic(CLAIMS_OUTBOUND_TOPIC)])
    publisher = KafkaPublisher(s)
    await publisher.start()
    relay = Relay(engine, publisher, s)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(3):
            async with UnitOfWork(engine, s.topic_prefix, s) as uow:
                uow.publish(CLAIMS_OUTBOUND_TOPIC, _released())
                await uow.commit()
            await wait_for(
                lambda: scalar(
                    engine, "SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"
                ),
                timeout=5,
                what="the row to be published",
            )
    finally:
        stop.set()
        await task
        await publisher.stop()
    assert relay.stats.published == 3
