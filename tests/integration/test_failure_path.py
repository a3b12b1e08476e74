"""Retry tiers, dead letters, replay and per-key order, through the real worker, relay and broker."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import (
    CLAIMS_INBOUND_TOPIC,
    ClaimApproved,
    ClaimReviewStarted,
    ClaimsInbound,
    ClaimSubmitted,
)
from schemas.envelope import CloudEvent
from service.config import Settings
from service.engine import dlq_actions, topics
from service.engine.processing import Outcome
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler, Workflow
from service.workflows.claims import handlers as claims_handlers
from tests.helpers import consume_all, event, publish, running, scalar, topic_size, wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
REQUIRED_HEADERS = {
    "x-original-topic",
    "x-original-partition",
    "x-original-offset",
    "x-original-timestamp",
    "x-consumer-group",
    "x-attempt",
    "x-error-type",
    "x-error-message",
    "x-error-trace",
    "x-first-failed-at",
    "x-last-failed-at",
    "x-error-class",
}


class Faults:
    """The claims handler with injected transient failures: event id -> failures left."""

    def __init__(self) -> None:
        self.plan: dict[str, int] = {}  # -1: fail forever
        self.down_for: dict[str, float] = {}  # fail for this long from the first call
        self.attempts: dict[str, list[float]] = defaultdict(list)

    async def handle(self, uow: UnitOfWork, event: CloudEvent) -> None:
        now = time.monotonic()
        self.attempts[event.id].append(now)
        if now - self.attempts[event.id][0] < self.down_for.get(event.id, 0):
            raise ConnectionError(f"downstream unavailable for {event.id}")
        left = self.plan.get(event.id, 0)
        if left:
            self.plan[event.id] = left - 1 if left > 0 else left
            raise ConnectionError(f"downstream unavailable for {event.id}")
        await claims_handlers.handle(uow, event)

    def workflow(self, *, batch: bool = False) -> Workflow:
        handler = Handler(
            name="claims",
            topic=CLAIMS_INBOUND_TOPIC,
            events=ClaimsInbound,
            handle=self.handle,
            batch=batch,
        )
        return Workflow("claims", "service.workflows.claims.tables", handlers=(handler,))


def submitted(claim: str) -> CloudEvent:
    return event(ClaimSubmitted, T0, claim_id=claim, task_id="t1", member_id="m1")


async def claim_status(engine: AsyncEngine, claim: str) -> str | None:
    status: str | None = await scalar(engine, "SELECT status FROM claims WHERE id = :id", id=claim)
    return status


async def test_transient_failures_go_through_tiers_then_apply_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.with_overrides(retry_delays_s=[0.5, 1.0, 1.0, 1.0, 1.0])
    faults = Faults()
    first = submitted("c1")
    faults.plan[first.id] = 2
    async with running(settings, engine, [faults.workflow()]):
        await publish(settings, CLAIMS_INBOUND_TOPIC, [first])
        await wait_for(lambda: claim_status(engine, "c1"), what="claim c1 applied")

    tries = faults.attempts[first.id]
    assert len(tries) == 3
    assert tries[1] - tries[0] >= 0.5 and tries[2] - tries[1] >= 1.0  # never early
    assert await scalar(engine, "SELECT count(*) FROM event_log WHERE entity_id = 'c1'") == 1
    for tier, expected in ((1, 1), (2, 1), (3, 0)):
        name = topics.retry(settings, CLAIMS_INBOUND_TOPIC, tier)
        assert await topic_size(settings, name) == expected, name
    [second_try] = await consume_all(settings, topics.retry(settings, CLAIMS_INBOUND_TOPIC, 2), 1)
    assert second_try.value == first.to_json()
    assert dict(second_try.headers)["x-attempt"] == b"2"


async def test_always_failing_message_is_dead_lettered_as_exhausted(
    settings: Settings, engine: AsyncEngine
) -> None:
    faults = Faults()
    doomed = submitted("c1")
    faults.plan[doomed.id] = -1
    raw = doomed.to_json()
    async with running(settings, engine, [faults.workflow()]):
        await publish(settings, CLAIMS_INBOUND_TOPIC, [raw], key="c1")
        await wait_for(
            lambda: scalar(engine, "SELECT count(*) FROM dead_letters"), what="dead letter indexed"
        )

    [record] = await consume_all(settings, topics.dlq(settings, CLAIMS_INBOUND_TOPIC), 1)
    headers = {k: v.decode() for k, v in record.headers}
    assert record.value == raw  # the payload bytes are never changed
    assert record.key == b"c1"
    assert REQUIRED_HEADERS <= set(headers)
    assert headers["x-error-class"] == "exhausted"
    assert headers["x-attempt"] == "6"  # the first try and five retries
    assert headers["x-error-type"] == "ConnectionError"
    assert headers["x-original-topic"] == settings.topic(CLAIMS_INBOUND_TOPIC)
    assert "downstream unavailable" in headers["x-error-trace"]
    assert len(faults.attempts[doomed.id]) == 6
    for tier in range(1, 6):
        assert await topic_size(settings, topics.retry(settings, CLAIMS_INBOUND_TOPIC, tier)) == 1
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM dead_letters"))).one()
    assert (row.error_class, row.status, row.attempts) == ("exhausted", "pending", 6)
    assert row.message_id == doomed.id and bytes(row.payload) == raw
    assert await claim_status(engine, "c1") is None


async def test_malformed_and_unknown_events_are_dead_lettered_at_once_without_blocking(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.with_overrides(kafka_partitions=1)
    good = submitted("c1")
    unknown = good.model_dump(mode="json") | {"id": str(uuid.uuid4()), "type": "claim.teleported"}
    missing = good.model_dump(mode="json") | {"id": str(uuid.uuid4())}
    del missing["data"]["member_id"]
    import json

    bad = [b"{not json", json.dumps(unknown).encode(), json.dumps(missing).encode()]
    started = event(ClaimReviewStarted, T0, claim_id="c1", reviewer_id="r1")
    async with running(settings, engine) as worker:
        await publish(
            settings, CLAIMS_INBOUND_TOPIC, [*bad, good.to_json(), started.to_json()], key="c1"
        )
        await wait_for(
            lambda: scalar(engine, "SELECT count(*) = 3 FROM dead_letters"), what="3 dead letters"
        )
        await wait_for(
            lambda: scalar(engine, "SELECT status = 'under_review' FROM claims WHERE id = 'c1'"),
            what="the valid events behind them applied",
        )
        assert worker.outcomes[Outcome.RETRIED] == 0  # nothing waited in a retry tier

    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM dead_letters ORDER BY id"))).all()
    assert [r.error_class for r in rows] == ["non_retryable"] * 3
    assert all(r.attempts == 1 for r in rows)
    assert {bytes(r.payload) for r in rows} == set(bad)
    by_payload = {bytes(r.payload): r for r in rows}
    assert "member_id" in by_payload[bad[2]].error_message  # the validation errors, named
    assert "claim.teleported" in by_payload[bad[1]].error_message
    assert await topic_size(settings, topics.retry(settings, CLAIMS_INBOUND_TOPIC, 1)) == 0


async def test_replay_after_the_fix_applies_once_and_a_second_replay_changes_nothing(
    settings: Settings, engine: AsyncEngine
) -> None:
    faults = Faults()
    doomed = submitted("c1")
    faults.plan[doomed.id] = -1
    async with running(settings, engine, [faults.workflow()]) as worker:
        await publish(settings, CLAIMS_INBOUND_TOPIC, [doomed])
        dead_id = await wait_for(
            lambda: scalar(engine, "SELECT id FROM dead_letters"), what="dead letter indexed"
        )
        faults.plan[doomed.id] = 0  # the fault is fixed

        first = await dlq_actions.replay_one(engine, settings, dead_id, "token:ops")
        assert first is not None and first["to"] == topics.retry(settings, CLAIMS_INBOUND_TOPIC, 1)
        await wait_for(lambda: claim_status(engine, "c1"), what="replayed claim applied")
        duplicates = worker.outcomes[Outcome.DUPLICATE]
        await dlq_actions.replay_one(engine, settings, dead_id, "token:ops")

        async def second_replay_seen() -> bool:
            return worker.outcomes[Outcome.DUPLICATE] > duplicates

        await wait_for(second_replay_seen, what="second replay handled")

    assert await scalar(engine, "SELECT count(*) FROM event_log WHERE entity_id = 'c1'") == 1
    assert await scalar(engine, "SELECT version FROM claims WHERE id = 'c1'") == 1
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM dead_letters"))).one()
        logged = (
            (
                await conn.execute(
                    sa.text(
                        "SELECT actor FROM event_log WHERE event_type = 'dead_letter.replayed' "
                        "AND entity_id = :id"
                    ),
                    {"id": str(dead_id)},
                )
            )
            .scalars()
            .all()
        )
    assert (row.status, row.replay_count, row.last_replayed_by) == ("replayed", 2, "token:ops")
    assert logged == ["token:ops", "token:ops"]


async def test_purge_removes_only_entries_past_retention_and_logs_who(
    engine: AsyncEngine,
) -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    async with engine.begin() as conn:
        for i, age in enumerate((40, 31, 29, 1)):
            await conn.execute(
                sa.text(
                    "INSERT INTO dead_letters (forward_id, dlq_topic, dlq_partition, dlq_offset, "
                    "original_topic, payload, headers, error_class, created_at) VALUES "
                    "(:f, 'g.claims.events.dlq', 0, :i, 'claims.events', '\\x00', '{}', "
                    "'exhausted', :at)"
                ),
                {"f": f"f{i}", "i": i, "at": now - timedelta(days=age)},
            )
    async with engine.begin() as conn:
        assert (
            await dlq_actions.purge(conn, timedelta(days=30), "token:ops", now, dry_run=True) == 2
        )
    async with engine.begin() as conn:
        assert await dlq_actions.purge(conn, timedelta(days=30), "token:ops", now) == 2
    left = await scalar(
        engine, "SELECT array_agg(forward_id ORDER BY forward_id) FROM dead_letters"
    )
    assert left == ["f2", "f3"]
    async with engine.connect() as conn:
        log = (
            await conn.execute(
                sa.text("SELECT * FROM event_log WHERE event_type = 'dead_letters.purged'")
            )
        ).one()
    assert log.actor == "token:ops" and log.metadata["deleted"] == 2


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_order_survives_a_retry_and_other_keys_flow_on(
    settings: Settings, engine: AsyncEngine, batch: bool
) -> None:
    settings = settings.with_overrides(kafka_partitions=1, retry_delays_s=[1.5, 1, 1, 1, 1])
    faults = Faults()
    c1 = [
        submitted("c1"),
        event(ClaimReviewStarted, T0 + timedelta(hours=1), claim_id="c1", reviewer_id="r1"),
        event(ClaimApproved, T0 + timedelta(hours=2), claim_id="c1", reviewer_id="r1"),
    ]
    c2 = [
        submitted("c2"),
        event(ClaimReviewStarted, T0 + timedelta(hours=1), claim_id="c2", reviewer_id="r1"),
        event(ClaimApproved, T0 + timedelta(hours=2), claim_id="c2", reviewer_id="r1"),
    ]
    async with running(settings, engine, [faults.workflow(batch=batch)]):
        # review_started fails while its dependency is down: 1 s from its first call (a
        # batch's fallback tries it again at once; the 1.5 s retry comes after it is up)
        faults.down_for[c1[1].id] = 1.0
        await publish(settings, CLAIMS_INBOUND_TOPIC, [*c1, *c2])  # one partition, in this order
        await wait_for(
            lambda: scalar(engine, "SELECT status = 'approved' FROM claims WHERE id = 'c1'"),
            what="c1 approved after its retried review start",
        )

    assert await claim_status(engine, "c2") == "approved"
    assert await topic_size(settings, topics.dlq(settings, CLAIMS_INBOUND_TOPIC)) == 0
    log = await scalar(
        engine,
        "SELECT array_agg(entity_id || ' ' || event_type ORDER BY id) FROM event_log",
    )
    # c2 went through while c1's review start waited in the retry tier ...
    assert log.index("c2 claim.approved") < log.index("c1 claim.review_started")
    # ... and c1's approval, parked behind it, followed it in order.
    assert log.index("c1 claim.review_started") < log.index("c1 claim.approved")
    assert await scalar(engine, "SELECT count(*) FROM parked_keys") == 0
    assert await scalar(engine, "SELECT count(*) FROM parked_messages") == 0
