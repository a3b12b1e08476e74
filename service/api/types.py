"""Input types the API shares: values that fit the database, or a 422 that says why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator, AwareDatetime

from schemas.envelope import nul_at

T = TypeVar("T")


def _in_range(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie between year 1 and 9999 once converted to UTC") from None


#: A time with an offset, stored as UTC: 0001-01-01T00:00+14:00 is refused, not crashed on.
Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]


def _storable(value: T) -> T:
    where = nul_at(value)
    if where is not None:
        raise ValueError(f"{where or 'the value'} contains NUL (\\u0000), which cannot be stored")
    return value


#: Text (or a JSON object) that reaches the database: NUL is refused with a 422, since
#: PostgreSQL cannot store it (it used to make a 500).
Storable = AfterValidator(_storable)
