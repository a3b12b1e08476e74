"""Schedule math, pure: the slots of a (cron, timezone) schedule, DST-correct.

A cron expression names wall-clock times in the schedule's timezone; each matching
local time is one *slot*, an instant:

- a local time that occurs once is that instant;
- one that occurs twice (clocks go back) is a slot once, at its first occurrence;
- one that does not exist (clocks go forward) fires once, at the first instant
  after the gap; every such time in one gap shares that one slot.

Expressions have 5 fields (minute hour day-of-month month day-of-week) or 6 with a
leading seconds field (``* * * * * *`` fires every second). No I/O, no wall clock:
time is always an argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

_FAR = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


class ScheduleError(ValueError):
    """A cron expression or timezone that cannot make a schedule; says why."""


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a ScheduleError that says what was expected."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{name!r} is not an IANA timezone (e.g. UTC, Europe/Berlin)") from None


def check_cron(expr: str) -> None:
    """Raise ScheduleError unless ``expr`` parses and fires at least once in 50 years."""
    try:
        next(CronSim(expr, datetime(2000, 1, 1)))
    except CronSimError as exc:
        raise ScheduleError(f"{expr!r} is not a cron expression: {exc}") from None
    except StopIteration:
        raise ScheduleError(f"{expr!r} never fires") from None


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def resolve(local: datetime, zone: ZoneInfo) -> datetime:
    """The slot (UTC) of the naive wall-clock time ``local`` in ``zone``."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _local(first, zone) == local:
        return first  # exists; if it occurs twice, this is the first occurrence
    # In a gap: fold=1 reads it with the offset after the change, which lands
    # before the transition; fold=0 lands after it. The slot is the transition.
    low = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if _local(mid, zone) > local:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


def jitter_offset(key: str, slot: datetime, jitter_s: float) -> timedelta:
    """A stable pseudo-random delay in [0, jitter_s) for one slot of one schedule.

    Stable, so a standby clock or a restart emits the slot at the same moment.
    """
    if jitter_s <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(f"{key}|{slot.isoformat()}".encode(), digest_size=8).digest()
    return timedelta(seconds=jitter_s * int.from_bytes(digest) / 2**64)


@dataclass(frozen=True)
class Schedule:
    """A cron expression read in an IANA timezone."""

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_cron(self.cron)
        _ = self.zone

    @cached_property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)

    def slots(self, after: datetime, until: datetime = _FAR) -> Iterator[datetime]:
        """Every slot ``s`` with ``after < s <= until``, in order, each once."""
        zone = self.zone
        previous = after
        for candidate in CronSim(self.cron, _local(after, zone)):
            slot = resolve(candidate, zone)
            if slot > until:
                return
            if slot > previous:  # skips second occurrences and gap duplicates
                previous = slot
                yield slot

    def next_after(self, after: datetime) -> datetime:
        """The first slot strictly after ``after``."""
        for slot in self.slots(after):
            return slot
        raise ScheduleError(f"{self.cron!r} does not fire after {after.isoformat()}")

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Slots with ``start <= s <= end`` (both ends included), for backfill and simulation."""
        return self.slots(start - timedelta(microseconds=1), end)
