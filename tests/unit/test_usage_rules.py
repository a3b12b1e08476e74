"""Usage rules: period boundaries, exactly-once tallies, thresholds once per period, actions."""

from __future__ import annotations

from collections import Counter as Multiset
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.usage import AutoAction, UsageRecorded
from service.workflows.usage import rules
from service.workflows.usage.rules import Counter, CounterKey, Limit

T = datetime(2026, 11, 2, 14, 37, 5, tzinfo=UTC)


def usage(i: int, at: datetime = T, org: str = "o1", metric: str = "api.calls", q: int = 1) -> Any:
    return UsageRecorded(
        id=f"u-{i}",
        source="/t",
        time=at,
        data={"organization_id": org, "metric": metric, "quantity": q},
    )


@pytest.mark.parametrize(
    ("at", "period", "start", "end"),
    [
        (T, "hourly", datetime(2026, 11, 2, 14, tzinfo=UTC), datetime(2026, 11, 2, 15, tzinfo=UTC)),
        (T, "daily", datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)),
        (T, "monthly", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            "monthly",
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2028, 2, 29, 12, tzinfo=UTC),
            "daily",
            datetime(2028, 2, 29, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
        # The boundary itself belongs to the new period.
        (
            datetime(2026, 11, 3, tzinfo=UTC),
            "daily",
            datetime(2026, 11, 3, tzinfo=UTC),
            datetime(2026, 11, 4, tzinfo=UTC),
        ),
        # Periods are UTC: 00:30 on 1 November in Berlin is still October in UTC.
        (
            datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")),
            "monthly",
            datetime(2026, 10, 1, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
        ),
    ],
)
def test_period_bounds(at: datetime, period: Any, start: datetime, end: datetime) -> None:
    assert rules.period_bounds(at, period) == (start, end)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["hourly", "daily", "monthly"]),
)
def test_every_instant_falls_in_exactly_its_period(at: datetime, period: Any) -> None:
    start, end = rules.period_bounds(at, period)
    assert start <= at < end
    assert rules.period_bounds(end, period)[0] == end  # periods tile time without gaps
    assert rules.period_bounds(start - timedelta(microseconds=1), period)[1] == start


def test_first_per_id_keeps_order_and_drops_repeats() -> None:
    events = [usage(1), usage(2), usage(1, q=9), usage(3), usage(2)]
    assert [(e.id, e.data.quantity) for e in rules.first_per_id(events)] == [
        ("u-1", 1),
        ("u-2", 1),
        ("u-3", 1),
    ]


def test_tally_sums_per_counter_and_period() -> None:
    hour = timedelta(hours=1)
    events = [
        usage(1, q=2),
        usage(2, T + hour, q=3),
        usage(3, q=4, metric="storage.gb"),
        usage(4, q=5, org="o2"),
    ]
    totals = rules.tally(events, {("o1", "api.calls"): "hourly"})
    h14, h15 = datetime(2026, 11, 2, 14, tzinfo=UTC), datetime(2026, 11, 2, 15, tzinfo=UTC)
    month = datetime(2026, 11, 1, tzinfo=UTC)  # unconfigured metrics count monthly
    assert {k: (t.period, t.quantity) for k, t in totals.items()} == {
        CounterKey("o1", "api.calls", h14): ("hourly", 2),
        CounterKey("o1", "api.calls", h15): ("hourly", 3),
        CounterKey("o1", "storage.gb", month): ("monthly", 4),
        CounterKey("o2", "api.calls", month): ("monthly", 5),
    }
    assert totals[CounterKey("o1", "api.calls", h14)].period_end == h15


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 72 * 60), st.integers(1, 50)), max_size=60)
)
def test_tally_preserves_every_unit(rows: list[tuple[int, int, int]]) -> None:
    events = [
        usage(i, T + timedelta(minutes=m), org=f"o{o}", q=q) for i, (o, m, q) in enumerate(rows)
    ]
    totals = rules.tally(events, {("o0", "api.calls"): "hourly", ("o1", "api.calls"): "daily"})
    per_org: Multiset[str] = Multiset()
    for key, t in totals.items():
        per_org[key.organization_id] += t.quantity
        assert t.last_at <= T + timedelta(minutes=72 * 60)
    expected: Multiset[str] = Multiset()
    for o, _, q in rows:
        expected[f"o{o}"] += q
    assert per_org == expected


LIMIT = Limit("o1", "api.calls", "monthly", 100, 80, "billing@o1")


def counter(
    value: int, warned: bool = False, limited: bool = False, period: Any = "monthly"
) -> Counter:
    key = CounterKey("o1", "api.calls", datetime(2026, 11, 1, tzinfo=UTC))
    return Counter(key, period, value, T if warned else None, T if limited else None)


@pytest.mark.parametrize(
    ("value", "warned", "limited", "expected"),
    [
        (79, False, False, (False, False)),
        (80, False, False, (True, False)),
        (99, True, False, (False, False)),
        (100, True, False, (False, True)),
        (100, False, False, (True, True)),  # one batch may jump over both
        (250, True, True, (False, False)),  # once per period
    ],
)
def test_crossings(value: int, warned: bool, limited: bool, expected: tuple[bool, bool]) -> None:
    assert rules.crossings(counter(value, warned, limited), LIMIT) == expected


def test_no_limit_or_a_different_period_fires_nothing() -> None:
    assert rules.crossings(counter(1000), None) == (False, False)
    assert rules.crossings(counter(1000, period="daily"), LIMIT) == (False, False)


def test_planned_actions_carry_the_reason_and_stable_ids_per_period() -> None:
    actions = (
        AutoAction(kind="disable_feature", target="export"),
        AutoAction(kind="notify", target="cto"),
    )
    limit = Limit("o1", "api.calls", "monthly", 100, 80, "billing@o1", actions)
    planned = rules.plan_actions(counter(105), limit)
    assert [(a.kind, a.target) for a in planned] == [
        ("disable_feature", "export"),
        ("notify", "cto"),
    ]
    assert planned[0].reason == (
        "api.calls usage reached 105 of the monthly limit 100 (period starting 2026-11-01 00:00 UTC)"
    )
    assert [a.id for a in rules.plan_actions(counter(140), limit)] == [a.id for a in planned]
    december = Counter(
        CounterKey("o1", "api.calls", datetime(2026, 12, 1, tzinfo=UTC)), "monthly", 105, None, None
    )
    assert {a.id for a in rules.plan_actions(december, limit)}.isdisjoint(a.id for a in planned)
    assert rules.warning_id(december.key) != rules.warning_id(counter(1).key)
