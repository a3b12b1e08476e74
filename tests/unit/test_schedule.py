"""Schedule math against a brute-force oracle, across DST changes in both directions.

The oracle walks real time minute by minute and asks, for each instant, whether a
wall-clock time the cron names becomes due there: a local time seen for the first
time (not the repeat of a hour that occurs twice), or the first instant after a gap
that swallowed one. It shares no code with ``service.engine.schedule``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine.schedule import Schedule, ScheduleError, jitter_offset

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney")
HORIZON = timedelta(hours=48)
MINUTE = timedelta(minutes=1)


def transitions(zone: str, years: range = range(2024, 2028)) -> list[datetime]:
    """UTC hours at which the zone's offset changes (both directions)."""
    tz = ZoneInfo(zone)
    found = []
    t = datetime(years.start, 1, 1, tzinfo=UTC)
    end = datetime(years.stop, 1, 1, tzinfo=UTC)
    while t < end:
        if t.astimezone(tz).utcoffset() != (t + timedelta(hours=1)).astimezone(tz).utcoffset():
            found.append(t + timedelta(hours=1))
        t += timedelta(hours=1)
    return found


TRANSITIONS = {zone: transitions(zone) for zone in ZONES}


@dataclass(frozen=True)
class Cron:
    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]

    def matches(self, local: datetime) -> bool:
        return local.minute in self.minutes and local.hour in self.hours


def field(low: int, high: int, near: list[int]) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    value = st.one_of(st.sampled_from(near), st.integers(low, high))
    return st.one_of(
        st.just(("*", frozenset(range(low, high + 1)))),
        st.integers(1, (high - low) // 2).map(
            lambda k: (f"*/{k}", frozenset(range(low, high + 1, k)))
        ),
        value.map(lambda v: (str(v), frozenset({v}))),
        st.tuples(value, value).map(
            lambda ab: (
                (f"{ab[0]},{ab[1]}", frozenset(ab))
                if ab[0] != ab[1]
                else (str(ab[0]), frozenset({ab[0]}))
            )
        ),
        st.tuples(value, value).map(
            lambda ab: (f"{min(ab)}-{max(ab)}", frozenset(range(min(ab), max(ab) + 1)))
        ),
    )


@st.composite
def crons(draw: st.DrawFn) -> Cron:
    minute, minutes = draw(field(0, 59, [0, 15, 30, 45, 59]))
    hour, hours = draw(field(0, 23, [0, 1, 2, 3, 4, 23]))  # where the DST changes happen
    return Cron(f"{minute} {hour} * * *", minutes, hours)


def oracle(cron: Cron, zone: str, after: datetime) -> datetime | None:
    tz = ZoneInfo(zone)
    u = after.replace(second=0, microsecond=0) + MINUTE
    previous = (u - MINUTE).astimezone(tz)
    while u <= after + HORIZON:
        now = u.astimezone(tz)
        local = now.replace(tzinfo=None, fold=0)
        first_time = now.fold == 0 and cron.matches(local)
        skipped = []
        gap = local - previous.replace(tzinfo=None, fold=0)
        if gap > MINUTE:  # clocks jumped forward: these wall-clock minutes never happened
            skipped = [local - k * MINUTE for k in range(1, gap // MINUTE)]
        if first_time or any(cron.matches(s) for s in skipped):
            return u
        previous, u = now, u + MINUTE
    return None


@st.composite
def instants_near_transitions(draw: st.DrawFn, zone: str) -> datetime:
    change = draw(st.sampled_from(TRANSITIONS[zone]))
    offset = draw(st.integers(-26 * 3600, 26 * 3600))
    return change + timedelta(seconds=offset)


@pytest.mark.parametrize("zone", ZONES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_next_slot_matches_the_minute_by_minute_oracle(zone: str, data: st.DataObject) -> None:
    cron = data.draw(crons())
    after = data.draw(instants_near_transitions(zone))
    expected = oracle(cron, zone, after)
    got = Schedule(cron.expr, zone).next_after(after)
    if expected is None:
        assert got > after + HORIZON
    else:
        assert got == expected


@pytest.mark.parametrize("zone", ZONES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_slots_over_a_day_are_the_oracle_chain(zone: str, data: st.DataObject) -> None:
    cron = data.draw(crons())
    start = data.draw(instants_near_transitions(zone))
    end = start + timedelta(hours=30)
    chain, t = [], start
    while (nxt := oracle(cron, zone, t)) is not None and nxt <= end:
        chain.append(nxt)
        t = nxt
    assert list(Schedule(cron.expr, zone).slots(start, end)) == chain


BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "start", "end", "expected"),
    [
        # 02:30 does not exist on 2024-03-31 in Berlin: it runs once at 03:00 CEST.
        ("30 2 * * *", BERLIN, utc(2024, 3, 30), utc(2024, 4, 1, 12),
         [utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30)]),
        # 02:30 happens twice on 2024-10-27 in Berlin: it runs once, at the first.
        ("30 2 * * *", BERLIN, utc(2024, 10, 26, 12), utc(2024, 10, 27, 12),
         [utc(2024, 10, 27, 0, 30)]),
        # Every 15 minutes through the gap: 02:00-02:45 collapse into 03:00.
        ("*/15 * * * *", BERLIN, utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1, 15),
         [utc(2024, 3, 31, 0, 45), utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 15)]),
        # New York, spring forward: 02:10 is skipped, runs at 03:00 EDT.
        ("10 2 * * *", "America/New_York", utc(2024, 3, 9, 12), utc(2024, 3, 10, 12),
         [utc(2024, 3, 10, 7)]),
        # Sydney, clocks go back on 2024-04-07 at 03:00 AEDT: 02:30 once (AEDT).
        ("30 2 * * *", "Australia/Sydney", utc(2024, 4, 6, 0), utc(2024, 4, 7, 0),
         [utc(2024, 4, 6, 15, 30)]),
        # Sydney, spring forward on 2024-10-06 at 02:00 AEST: 02:30 runs at 03:00 AEDT.
        ("30 2 * * *", "Australia/Sydney", utc(2024, 10, 5, 0), utc(2024, 10, 6, 0),
         [utc(2024, 10, 5, 16)]),
    ],
)  # fmt: skip
def test_documented_dst_cases(
    cron: str, zone: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert list(Schedule(cron, zone).slots(start, end)) == expected


def test_seconds_field_fires_every_second() -> None:
    t0 = utc(2026, 1, 1, 0, 0, 0)
    assert list(Schedule("* * * * * *").slots(t0, t0 + timedelta(seconds=3))) == [
        t0 + timedelta(seconds=s) for s in (1, 2, 3)
    ]
    assert Schedule("*/10 * * * * *").next_after(t0 + timedelta(seconds=3.5)) == (
        t0 + timedelta(seconds=10)
    )


def test_between_includes_both_ends() -> None:
    t0 = utc(2026, 1, 1)
    slots = list(Schedule("0 * * * *").between(t0, t0 + timedelta(hours=2)))
    assert slots == [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)]


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("61 * * * *", "UTC", "Bad minute"),
        ("* * *", "UTC", "Wrong number of fields"),
        ("0 0 30 2 *", "UTC", "Bad day-of-month"),
        ("0 3 * * *", "Mars/Olympus", "not an IANA timezone"),
    ],
)
def test_bad_schedules_say_why(cron: str, zone: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule(cron, zone)


def test_jitter_is_stable_and_bounded() -> None:
    slot = utc(2026, 1, 1)
    offsets = {jitter_offset(f"job{i}", slot, 30) for i in range(200)}
    assert len(offsets) > 150
    assert all(timedelta(0) <= o < timedelta(seconds=30) for o in offsets)
    assert jitter_offset("job1", slot, 30) == jitter_offset("job1", slot, 30)
    assert jitter_offset("job1", slot, 0) == timedelta(0)
