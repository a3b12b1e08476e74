"""Usage rules: periods, counting, thresholds and the auto-actions a limit triggers.

Pure: no I/O, no clock. A usage event counts in the period that contains its own
``time``; a period's thresholds fire at most once, remembered on its counter, so a
new period (a new counter, at zero) re-arms them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from schemas.envelope import CloudEvent
from schemas.usage import AutoAction, Period, UsageRecorded

DEFAULT_PERIOD: Period = "monthly"
NS = uuid.UUID("3b4e1f0c-7a52-4f0e-8d6b-1c2a9e8f7d03")

E = TypeVar("E", bound=CloudEvent)


def period_bounds(at: datetime, period: Period) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the ``period`` that contains ``at``."""
    t = at.astimezone(UTC)
    if period == "hourly":
        start = t.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


@dataclass(frozen=True)
class Limit:
    """An organization's limit on one metric: thresholds, contact and auto-actions."""

    organization_id: str
    metric: str
    period: Period
    limit: int
    warning_pct: int
    contact: str
    actions: tuple[AutoAction, ...] = ()


@dataclass(frozen=True)
class CounterKey:
    organization_id: str
    metric: str
    period_start: datetime


@dataclass(frozen=True)
class Tally:
    """What a batch adds to one counter."""

    period: Period
    period_end: datetime
    quantity: int
    last_at: datetime


@dataclass(frozen=True)
class Counter:
    """A period's counter after an upsert, with the thresholds it has already fired."""

    key: CounterKey
    period: Period
    value: int
    warned_at: datetime | None
    limited_at: datetime | None


def first_per_id(events: Iterable[E]) -> list[E]:
    """Drop repeated event ids, keeping the first: each event counts exactly once."""
    seen: set[str] = set()
    unique = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            unique.append(event)
    return unique


def tally(
    events: Sequence[UsageRecorded], periods: Mapping[tuple[str, str], Period]
) -> dict[CounterKey, Tally]:
    """Sum quantities per (organization, metric, period start); events need unique ids."""
    totals: dict[CounterKey, Tally] = {}
    for event in events:
        d = event.data
        period = periods.get((d.organization_id, d.metric), DEFAULT_PERIOD)
        start, end = period_bounds(event.time, period)
        key = CounterKey(d.organization_id, d.metric, start)
        before = totals.get(key)
        if before is None:
            totals[key] = Tally(period, end, d.quantity, event.time)
        else:
            last = max(before.last_at, event.time)
            totals[key] = Tally(period, end, before.quantity + d.quantity, last)
    return totals


def warning_reached(value: int, limit: Limit) -> bool:
    """At or above ``warning_pct`` percent of the limit (exact integer arithmetic)."""
    return value * 100 >= limit.limit * limit.warning_pct


def crossings(counter: Counter, limit: Limit | None) -> tuple[bool, bool]:
    """(send the warning now, run the limit's actions now): each once per period."""
    if limit is None or limit.period != counter.period:
        return False, False
    warn = counter.warned_at is None and warning_reached(counter.value, limit)
    reach = counter.limited_at is None and counter.value >= limit.limit
    return warn, reach


@dataclass(frozen=True)
class PlannedAction:
    """One auto-action with its audit reason; ``id`` is stable per period and action."""

    id: str
    kind: Literal["disable_feature", "block_api_key", "notify"]
    target: str
    reason: str


def plan_actions(counter: Counter, limit: Limit) -> list[PlannedAction]:
    """The limit's actions for this period, each with the reason the audit log keeps."""
    k = counter.key
    start = k.period_start.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    reason = (
        f"{k.metric} usage reached {counter.value} of the {counter.period} limit "
        f"{limit.limit} (period starting {start} UTC)"
    )
    return [
        PlannedAction(
            str(uuid.uuid5(NS, f"{k.organization_id}|{k.metric}|{start}|{a.kind}|{a.target}")),
            a.kind,
            a.target,
            reason,
        )
        for a in limit.actions
    ]


def warning_id(key: CounterKey) -> str:
    """The warning's notification id: one per organization, metric and period."""
    start = key.period_start.astimezone(UTC).isoformat()
    return str(uuid.uuid5(NS, f"warning|{key.organization_id}|{key.metric}|{start}"))
