"""Usage metering: exact batched counters, limits that act once per period, rollover, audit."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.audit import AuditRecorded
from schemas.envelope import CloudEvent
from schemas.notifications import NotificationRequested
from schemas.usage import (
    FeatureFlagSet,
    LimitConfigured,
    LimitExceeded,
    PeriodClosed,
    UsageRecorded,
)
from service.config import Settings
from service.engine.uow import UnitOfWork
from service.engine.workflow import JobContext, NoParams
from service.workflows.usage import audit, handlers, jobs

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def ev(cls: type[CloudEvent], time: datetime, id: str | None = None, **data: Any) -> CloudEvent:
    return cls.model_validate(
        {"id": id or str(uuid.uuid4()), "source": "/t", "time": time, "data": data}
    )


def use(org: str, metric: str, at: datetime, quantity: int = 1) -> CloudEvent:
    return ev(UsageRecorded, at, organization_id=org, metric=metric, quantity=quantity)


async def consume(
    engine: AsyncEngine, settings: Settings, batch: Sequence[CloudEvent], consumer: str = "usage"
) -> None:
    """One batch as the engine runs it: inbox first, then handle_batch, one transaction."""
    async with UnitOfWork(engine, settings.topic_prefix, settings) as uow:
        new = await uow.claim_messages(consumer, [e.id for e in batch])
        fresh = [e for e in batch if e.id in new]
        if consumer == "usage":
            await handlers.handle_batch(uow, fresh)
        else:
            await audit.handle_batch(uow, fresh)
        await uow.commit()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql), params))


async def counters(engine: AsyncEngine) -> dict[tuple[str, str, datetime], int]:
    found = await rows(
        engine, "SELECT organization_id, metric, period_start, value FROM usage_counters"
    )
    return {(r.organization_id, r.metric, r.period_start): r.value for r in found}


def hour_of(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


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


async def test_crossing_the_limit_disables_the_flag_once_and_logs_it(
    settings: Settings, engine: AsyncEngine
) -> None:
    org = {"organization_id": "o1"}
    await consume(
        engine,
        settings,
        [
            ev(FeatureFlagSet, T0, **org, flag="bulk-export", enabled=True),
            ev(
                LimitConfigured,
                T0,
                **org,
                metric="api.calls",
                period="monthly",
                limit=100,
                warning_pct=80,
                contact="billing@o1",
                actions=[
                    {"kind": "disable_feature", "target": "bulk-export"},
                    {"kind": "block_api_key", "target": "key-ci"},
                    {"kind": "notify", "target": "cto@o1"},
                ],
            ),
        ],
    )
    t = T0 + timedelta(hours=1)
    await consume(engine, settings, [use("o1", "api.calls", t, 70)])
    await consume(
        engine, settings, [use("o1", "api.calls", t + timedelta(minutes=1), 15)]
    )  # 85: warning
    assert await flag(engine, "bulk-export") == (True, None)
    crossing = t + timedelta(minutes=2)
    await consume(
        engine,
        settings,
        [use("o1", "api.calls", crossing, 10), use("o1", "api.calls", crossing, 10)],
    )  # 105
    await consume(
        engine, settings, [use("o1", "api.calls", t + timedelta(minutes=3), 10)]
    )  # 115: nothing new

    reason = "api.calls usage reached 105 of the monthly limit 100 (period starting 2026-11-01 00:00 UTC)"
    assert await flag(engine, "bulk-export") == (False, reason)
    key = await rows(engine, "SELECT active, reason FROM usage_api_keys WHERE key_id = 'key-ci'")
    assert [(k.active, k.reason) for k in key] == [(False, reason)]
    audit_rows = await rows(
        engine, "SELECT action, target_id, reason, occurred_at FROM audit_log ORDER BY action"
    )
    assert [(a.action, a.target_id, a.reason, a.occurred_at) for a in audit_rows] == [
        ("usage.block_api_key", "key-ci", reason, crossing),
        ("usage.disable_feature", "bulk-export", reason, crossing),
        ("usage.notify", "cto@o1", reason, crossing),
    ]

    # The organization turns the feature back on; more usage this period does not repeat the actions.
    await consume(
        engine,
        settings,
        [ev(FeatureFlagSet, t + timedelta(minutes=4), **org, flag="bulk-export", enabled=True)],
    )
    await consume(engine, settings, [use("o1", "api.calls", t + timedelta(minutes=5), 50)])
    assert await flag(engine, "bulk-export") == (True, None)
    assert len(await rows(engine, "SELECT id FROM audit_log")) == 3
    applied = await rows(
        engine, "SELECT metadata FROM event_log WHERE event_type = 'usage.action.applied'"
    )
    assert sorted(r.metadata["kind"] for r in applied) == [
        "block_api_key",
        "disable_feature",
        "notify",
    ]
    assert all(r.metadata["reason"] == reason for r in applied)

    outbox = [r.payload for r in await rows(engine, "SELECT payload FROM outbox ORDER BY id")]
    notes = [
        NotificationRequested.model_validate(p)
        for p in outbox
        if p["type"] == "notification.requested"
    ]
    assert [(n.data.recipient, n.data.template, n.data.data["value"]) for n in notes] == [
        ("billing@o1", "usage.warning", 85),
        ("cto@o1", "usage.limit_reached", 105),
    ]
    exceeded = [
        LimitExceeded.model_validate(p) for p in outbox if p["type"] == "usage.limit.exceeded"
    ]
    assert [(x.data.value, x.data.limit, x.key) for x in exceeded] == [(105, 100, "o1")]


async def flag(engine: AsyncEngine, name: str) -> tuple[bool, str | None]:
    found = await rows(
        engine, "SELECT enabled, reason FROM usage_feature_flags WHERE flag = :f", f=name
    )
    return found[0].enabled, found[0].reason


async def rollover(engine: AsyncEngine, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    ctx = JobContext(now, "scheduled", None, NoParams(), False, settings)
    async with engine.begin() as conn:
        return (await jobs.rollover(conn, ctx)).rows


async def test_rollover_archives_resets_and_rearms(settings: Settings, engine: AsyncEngine) -> None:
    org = {"organization_id": "o2"}
    await consume(
        engine,
        settings,
        [
            ev(
                LimitConfigured,
                T0,
                **org,
                metric="api.calls",
                period="hourly",
                limit=10,
                warning_pct=50,
                contact="billing@o2",
                actions=[{"kind": "disable_feature", "target": "search"}],
            ),
        ],
    )
    h1, h2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    await consume(
        engine, settings, [use("o2", "api.calls", h1 + timedelta(minutes=m), 3) for m in range(4)]
    )  # 12

    assert await rollover(engine, settings, h1 + timedelta(minutes=59)) == []  # not ended yet
    closed = await rollover(engine, settings, h2)
    assert closed == [
        {
            "organization_id": "o2",
            "metric": "api.calls",
            "period": "hourly",
            "period_start": h1.isoformat(),
            "period_end": h2.isoformat(),
            "value": 12,
        },
    ]
    assert await rollover(engine, settings, h2) == []  # idempotent
    assert await counters(engine) == {}
    archived = await rows(engine, "SELECT value, warned_at, limited_at FROM usage_counters_archive")
    assert [(a.value, a.warned_at is not None, a.limited_at is not None) for a in archived] == [
        (12, True, True)
    ]

    # The next hour starts at zero, and its thresholds fire again.
    await consume(engine, settings, [ev(FeatureFlagSet, h2, **org, flag="search", enabled=True)])
    await consume(engine, settings, [use("o2", "api.calls", h2 + timedelta(minutes=1), 6)])
    assert await counters(engine) == {("o2", "api.calls", h2): 6}
    await consume(engine, settings, [use("o2", "api.calls", h2 + timedelta(minutes=2), 4)])
    assert await flag(engine, "search") == (
        False,
        "api.calls usage reached 10 of the hourly limit 10 (period starting 2026-11-02 16:00 UTC)",
    )
    # A late event for the archived hour is added to the archive and fires nothing.
    await consume(engine, settings, [use("o2", "api.calls", h1 + timedelta(minutes=30), 1)])
    assert [a.value for a in await rows(engine, "SELECT value FROM usage_counters_archive")] == [13]
    assert await counters(engine) == {("o2", "api.calls", h2): 10}

    log = await rows(
        engine,
        "SELECT event_type, entity_id FROM event_log WHERE entity_type = 'usage_counter' ORDER BY id",
    )
    assert [(r.event_type, r.entity_id) for r in log] == [
        ("usage.warning.sent", "o2/api.calls/2026-11-02T15:00Z"),
        ("usage.limit.exceeded", "o2/api.calls/2026-11-02T15:00Z"),
        ("usage.period.closed", "o2/api.calls/2026-11-02T15:00Z"),
        ("usage.warning.sent", "o2/api.calls/2026-11-02T16:00Z"),
        ("usage.limit.exceeded", "o2/api.calls/2026-11-02T16:00Z"),
    ]
    assert (
        len(await rows(engine, "SELECT id FROM audit_log WHERE action = 'usage.disable_feature'"))
        == 2
    )
    payloads = [
        r.payload
        for r in await rows(
            engine, "SELECT payload FROM outbox WHERE payload->>'type' = 'usage.period.closed'"
        )
    ]
    assert [PeriodClosed.model_validate(p).data.value for p in payloads] == [12]


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
