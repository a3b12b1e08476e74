"""Messages built to break storage or parsing are dead-lettered; their partition flows on.

Each of these stopped a partition (or the whole consumer) before the fault suite's
fuzzing found it: a header value that is not UTF-8 (FastStream's parser failed
the whole fetch), a NUL in a key, a header or a payload string (PostgreSQL refuses
it, even in the dead letter's own row), and an event time that overflows once in
UTC (a bare OverflowError, so the batch was redelivered forever).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC, ClaimReviewStarted, ClaimsInbound, ClaimSubmitted
from schemas.envelope import make
from service.config import Settings
from service.engine.failures import Incoming
from service.engine.kafka import KafkaPublisher
from service.engine.metrics import REGISTRY
from service.engine.processing import Outcome, Processor
from service.engine.workflow import Handler
from service.workflows.claims import handlers
from tests.helpers import running, scalar, wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _submitted(claim: str, **changes: object) -> bytes:
    """A claim.submitted as JSON, written as a producer would (no validation on our side)."""
    event = make(ClaimSubmitted, T0, source="/tests", claim_id="c", task_id="t", member_id="m")
    doc = json.loads(event.to_json())
    doc["data"]["claim_id"] = claim
    return json.dumps(doc | changes).encode()


async def test_hostile_messages_are_dead_lettered_and_their_partition_flows_on(
    settings: Settings, engine: AsyncEngine
) -> None:
    topic = settings.topic(CLAIMS_INBOUND_TOPIC)
    started = make(ClaimReviewStarted, T0, source="/tests", claim_id="c1", reviewer_id="r1")
    bad = {
        "NUL in a payload string": _submitted("c\x00"),
        "time past datetime's range in UTC": _submitted("c1", time="9999-12-31T23:59:59-05:00"),
        "NUL in the key and a header": b"not json",
    }
    async with running(settings, engine):
        publisher = KafkaPublisher(settings)
        await publisher.start()
        try:
            messages = [
                (_submitted("c1"), b"c1", [("trace", b"\xff\xfe"), ("a\x00", b"\x00")]),
                (bad["NUL in a payload string"], b"c1", []),
                (bad["time past datetime's range in UTC"], b"c1", []),
                (bad["NUL in the key and a header"], b"c1\x00", [("x\x00", b"y\x00")]),
                (started.to_json(), b"c1", [("trace", b"\xc3")]),
            ]
            await publisher.send_many((topic, v, k, h) for v, k, h in messages)
        finally:
            await publisher.stop()

        async def settled() -> bool:
            status = await scalar(engine, "SELECT status FROM claims WHERE id = 'c1'")
            letters = await scalar(engine, "SELECT count(*) FROM dead_letters")
            return status == "under_review" and letters == len(bad)

        await wait_for(settled, timeout=60, what="c1 under review and three dead letters")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT payload, error_class, error_message, message_key FROM dead_letters")
            )
        ).all()
    by_payload = {bytes(r.payload): r for r in rows}
    assert set(by_payload) == set(bad.values())
    for name, raw in bad.items():
        row = by_payload[raw]
        assert row.error_class == "non_retryable", name
        assert row.error_message, name
    assert by_payload[bad["NUL in a payload string"]].error_message.count("NUL")
    assert by_payload[bad["NUL in the key and a header"]].message_key == "c1\ufffd"


def _dead_letters_counted() -> float:
    labels = {"topic": CLAIMS_INBOUND_TOPIC, "error_class": "non_retryable"}
    return REGISTRY.get_sample_value("jobstream_dead_letters_total", labels) or 0.0


async def test_a_batch_tried_again_in_parts_counts_each_dead_letter_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    handler = Handler(
        "claims",
        CLAIMS_INBOUND_TOPIC,
        ClaimsInbound,
        handlers.handle,
        batch=True,
        handle_batch=handlers.handle_batch,
    )
    processor = Processor(engine, handler, settings)
    approve_nothing = make(
        ClaimReviewStarted, T0, source="/tests", claim_id="nobody", reviewer_id="r1"
    )
    batch = [
        Incoming(CLAIMS_INBOUND_TOPIC, 0, 0, b"c1", b"not json"),  # dead in every attempt
        Incoming(CLAIMS_INBOUND_TOPIC, 0, 1, b"nobody", approve_nothing.to_json()),  # fails it
        Incoming(CLAIMS_INBOUND_TOPIC, 0, 2, b"c1", _submitted("c1")),
    ]
    before = _dead_letters_counted()
    assert await processor.process(batch) == [Outcome.DEAD, Outcome.DEAD, Outcome.APPLIED]
    assert _dead_letters_counted() - before == 1  # the other one is an invalid transition
