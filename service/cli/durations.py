"""Parsing the durations and instants that CLI flags take: ``30d``, ``12h``, ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w``; raises ValueError saying what is expected."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit: 90s, 15m, 12h, 30d")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC if it has no offset) or a duration meaning that long ago."""
    try:
        return (now or datetime.now(UTC)) - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2h, 7d) nor an ISO time (2026-11-01T09:00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
