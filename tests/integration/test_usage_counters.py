"""Usage counting: exact counters from batches with duplicates; audit events kept once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.audit import AuditRecorded
from schemas.envelope import CloudEvent
from schemas.usage import LimitConfigured, UsageRecorded
from service.config import Settings
from service.engine.uow import UnitOfWork
from service.workflows.usage import audit
from tests.integration.usage_support import (
    T0,
    consume,
    counters,
    ev,
    hour_of,
    rows,
    use,
)

pytestmark = pytest.mark.integration


async def test_10000_events_with_5_percent_duplicates_give_exact_counters(
    settings: Settings, engine: AsyncEngine
) -> None:
    rng = random.Random(6)
    orgs = [f"org-{i}" for i in range(8)]
    metrics = ["api.calls", "storage.gb", "seats"]
    # api.calls counts per hour, storage per day, seats per month (unconfigured default).
    config = [
        ev(
            LimitConfigured,
            T0 - timedelta(days=1),
            organization_id=o,
            metric=m,
            period=p,
            limit=10**12,
            contact="billing",
        )
        for o in orgs
        for m, p in (("api.calls", "hourly"), ("storage.gb", "daily"))
    ]
    await consume(engine, settings, config)
    unique = [
        use(
            rng.choice(orgs),
            rng.choice(metrics),
            T0 + timedelta(seconds=rng.randrange(3 * 86400)),
            rng.randint(1, 5),
        )
        for _ in range(9500)
    ]
    # Each duplicate lands 1 to 300 places after its original: often in the same batch.
    placed = [(i, 0, e) for i, e in enumerate(unique)]
    for _ in range(500):
        i = rng.randrange(len(unique))
        placed.append((i + rng.randint(1, 300), 1, unique[i]))
    stream = [e for _, _, e in sorted(placed, key=lambda p: (p[0], p[1]))]
    assert len(stream) == 10_000 and len({e.id for e in stream}) == 9500

    # Two consumers at once (ids split between them) hit the same counters concurrently.
    lanes = [[e for e in stream if uuid.UUID(e.id).int % 2 == lane] for lane in (0, 1)]

    async def lane(events: list[CloudEvent]) -> None:
        for start in range(0, len(events), 250):
            await consume(engine, settings, events[start : start + 250])

    await asyncio.gather(*(lane(events) for events in lanes))

    def period_start(metric: str, t: datetime) -> datetime:
        if metric == "api.calls":
            return hour_of(t)
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return day if metric == "storage.gb" else day.replace(day=1)

    expected: dict[tuple[str, str, datetime], int] = defaultdict(int)
    for e in unique:
        assert isinstance(e, UsageRecorded)
        expected[(e.data.organization_id, e.data.metric, period_start(e.data.metric, e.time))] += (
            e.data.quantity
        )
    assert await counters(engine) == dict(expected)
    inbox = await rows(
        engine, "SELECT count(*) AS n FROM processed_messages WHERE consumer = 'usage'"
    )
    assert inbox[0].n == 9500 + len(config)


async def test_audit_events_are_kept_once_per_id(settings: Settings, engine: AsyncEngine) -> None:
    def audit_event(i: int) -> CloudEvent:
        return ev(
            AuditRecorded,
            T0,
            id=f"a-{i}",
            organization_id="o1",
            actor="u1",
            action="login",
            target_type="session",
            target_id=f"s-{i}",
            details={"ip": "203.0.113.7"},
        )

    batch = [audit_event(1), audit_event(2), audit_event(1)]
    async with UnitOfWork(
        engine, settings.topic_prefix, settings
    ) as uow:  # no inbox: the log itself dedupes
        await audit.handle_batch(uow, batch)
        await audit.handle(uow, audit_event(2))
        await uow.commit()
    await consume(engine, settings, [audit_event(3), audit_event(1)], consumer="audit")

    stored = await rows(engine, "SELECT id, target_id, details FROM audit_log ORDER BY id")
    assert [(r.id, r.target_id, r.details) for r in stored] == [
        ("a-1", "s-1", {"ip": "203.0.113.7"}),
        ("a-2", "s-2", {"ip": "203.0.113.7"}),
        ("a-3", "s-3", {"ip": "203.0.113.7"}),
    ]
