"""Usage limits: the warning and the auto-actions once per period; rollover re-arms them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.notifications import NotificationRequested
from schemas.usage import FeatureFlagSet, LimitConfigured, LimitExceeded, PeriodClosed
from service.config import Settings
from tests.integration.usage_support import (
    T0,
    consume,
    counters,
    ev,
    flag,
    rollover,
    rows,
    use,
)

pytestmark = pytest.mark.integration


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
