"""CloudEvents 1.0 envelope (structured JSON mode) shared by every jobstream event.

Each event type is a subclass of :class:`CloudEvent` that pins ``type`` to a literal
and ``data`` to its payload model, so a union of subclasses discriminated by
``type`` validates the envelope and the payload in one step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SPEC_VERSION = "1.0"

#: An event's ``time`` must lie in [TIME_MIN, TIME_MAX): nothing plausible falls
#: outside, and the rules' date arithmetic (days to years either way) stays within
#: what a datetime can hold instead of overflowing in a handler.
TIME_MIN = datetime(1900, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9000, 1, 1, tzinfo=UTC)

Id = Annotated[str, Field(min_length=1, max_length=128)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]


class Payload(BaseModel):
    """Base of every event payload: strict, immutable, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CloudEvent(BaseModel):
    """CloudEvents 1.0 attributes plus the ``correlationid``/``causationid`` extensions.

    ``id`` is the idempotency key; ``time`` is when it happened upstream and is the
    only clock that domain rules read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Which entity id in ``data`` is the Kafka key (the aggregate id).
    key_field: ClassVar[str] = ""

    specversion: Annotated[str, Field(pattern=r"^1\.0$")] = SPEC_VERSION
    id: Annotated[str, Field(min_length=1, max_length=128)]
    source: Annotated[str, Field(min_length=1, max_length=500)]
    type: str
    time: AwareDatetime
    subject: Annotated[str, Field(max_length=500)] | None = None
    datacontenttype: Annotated[str, Field(max_length=100)] = "application/json"
    correlationid: Annotated[str, Field(max_length=128)] | None = None
    causationid: Annotated[str, Field(max_length=128)] | None = None
    data: Payload

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No string anywhere in the event may hold NUL: PostgreSQL cannot store one."""
        where = nul_at(value)
        if where is not None:
            raise ValueError(f"{where or 'the event'} contains NUL (\\u0000), which no store keeps")
        return value

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00: past datetime's range in UTC
            raise ValueError("time is out of range once converted to UTC") from None
        if not TIME_MIN <= value < TIME_MAX:
            raise ValueError(
                f"time must lie between {TIME_MIN.isoformat()} and {TIME_MAX.isoformat()}"
            )
        return value

    @property
    def key(self) -> str:
        """The Kafka message key: the aggregate id named by ``key_field``."""
        return str(getattr(self.data, self.key_field)) if self.key_field else self.id

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def nul_at(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) in ``value`` that holds a NUL.

    PostgreSQL's text and jsonb cannot store NUL: whatever reaches them is checked.
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here.replace("\x00", "\\u0000")
            found = nul_at(item, here)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = nul_at(item, f"{path}[{n}]")
            if found is not None:
                return found
    return None


E = TypeVar("E", bound=CloudEvent)


def make(
    cls: type[E], time: datetime, *, source: str, event_id: str | None = None, **data: Any
) -> E:
    """Build and validate an event of type ``cls`` from its payload fields."""
    return cls.model_validate(
        {
            "id": event_id or new_event_id(),
            "source": source,
            "type": cls.model_fields["type"].default,
            "time": time,
            "data": data,
        }
    )


def new_event_id() -> str:
    return str(uuid.uuid4())


def envelope_fields(
    *, source: str, time: datetime, event_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Common attributes for building an event in code (producers, tests, demo)."""
    return {"id": event_id or new_event_id(), "source": source, "time": time, **extra}
