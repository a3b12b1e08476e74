"""A failure decided once is not started again when its message is delivered again.

A message whose handler always fails goes to its retry tier (its key parked behind
it) and, after the last tier, to the dead letters (its key released). If the same
message is then delivered again from the same offset (a partition consumed again
from an old offset), the processing path must see that this failure was decided
before: starting it again would set the key's head once more, and as the forward
to the tier is deduplicated no tier copy would ever come back to release it, so
every later message with that key would stay parked for good. The retry tiers are
driven by hand here: each tier copy is read from the outbox row the relay would
publish.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC, ClaimsInbound, ClaimSubmitted
from schemas.envelope import CloudEvent, make
from service.config import Settings
from service.engine.failures import Incoming
from service.engine.processing import Outcome, Processor
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler
from service.workflows.claims import handlers
from tests.helpers import scalar

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _processor(engine: AsyncEngine, settings: Settings, failing: set[str]) -> Processor:
    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        if event.id in failing:
            raise ConnectionError("the dependency is down")
        await handlers.handle(uow, event)

    handler = Handler("claims", CLAIMS_INBOUND_TOPIC, ClaimsInbound, handle, retry_delays_s=(0.1,))
    return Processor(engine, handler, settings)


def _message(settings: Settings, claim: str, offset: int) -> tuple[str, Incoming]:
    event = make(ClaimSubmitted, T0, source="/tests", claim_id=claim, task_id="t1", member_id="m1")
    topic = settings.topic(CLAIMS_INBOUND_TOPIC)
    return event.id, Incoming(topic, 0, offset, claim.encode(), event.to_json(), {})


async def _tier_copy(engine: AsyncEngine, event_id: str, offset: int) -> Incoming:
    """The newest forward of ``event_id`` to a retry tier, as the tier consumer reads it."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT topic, key, value, headers::text AS headers FROM outbox "
                    "WHERE value IS NOT NULL AND topic LIKE '%.retry.%' "
                    "AND convert_from(value, 'UTF8')::jsonb->>'id' = :id ORDER BY id DESC"
                ),
                {"id": event_id},
            )
        ).first()
    assert row is not None, f"no tier copy of {event_id}"
    headers = {k: str(v).encode() for k, v in json.loads(row.headers).items()}
    return Incoming(row.topic, 0, offset, row.key.encode(), bytes(row.value), headers)


async def _counts(engine: AsyncEngine) -> tuple[int, int, int]:
    return (
        await scalar(engine, "SELECT count(*) FROM parked_keys"),
        await scalar(engine, "SELECT count(*) FROM parked_messages"),
        await scalar(engine, "SELECT count(*) FROM outbox"),
    )


async def _exhaust(processor: Processor, engine: AsyncEngine, event_id: str, msg: Incoming) -> None:
    """Fail ``msg`` from its source, then from its only tier: dead-lettered, key released."""
    assert await processor.process([msg]) == [Outcome.RETRIED]
    copy = await _tier_copy(engine, event_id, 0)
    assert await processor.process([copy], from_tier=True) == [Outcome.DEAD]


async def test_a_failure_delivered_again_after_its_dead_letter_parks_nothing(
    settings: Settings, engine: AsyncEngine
) -> None:
    doomed_id, doomed = _message(settings, "c1", 0)
    processor = _processor(engine, settings, {doomed_id})
    await _exhaust(processor, engine, doomed_id, doomed)
    before = await _counts(engine)
    assert before[:2] == (0, 0)

    assert await processor.process([doomed]) == [Outcome.DUPLICATE]  # same offset again
    assert await _counts(engine) == before
    # The key flows: a later event of c1 is applied, not parked.
    _, later = _message(settings, "c1", 1)
    assert await processor.process([later]) == [Outcome.APPLIED]


async def test_a_failure_parked_again_behind_another_head_is_dropped_when_drained(
    settings: Settings, engine: AsyncEngine
) -> None:
    first_id, first = _message(settings, "c1", 0)
    second_id, second = _message(settings, "c1", 1)
    processor = _processor(engine, settings, {first_id, second_id})
    await _exhaust(processor, engine, first_id, first)
    # The second failing event of c1 heads the key now; the first, delivered again,
    # queues behind it.
    assert await processor.process([second]) == [Outcome.RETRIED]
    assert await processor.process([first]) == [Outcome.PARKED]
    copy = await _tier_copy(engine, second_id, 1)
    assert await processor.process([copy], from_tier=True) == [Outcome.DEAD]
    # Draining the key met the first again: decided before, so dropped, key released.
    parked_keys, parked, _ = await _counts(engine)
    assert (parked_keys, parked) == (0, 0)
