"""CloudEvents 1.0 envelope (structured JSON mode) shared by every jobstream event.

Each event type is a subclass of :class:`CloudEvent` that pins ``type`` to a literal
and ``data`` to its payload model, so a union of subclasses discriminated by
``type`` validates the envelope and the payload in one step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SPEC_VERSION = "1.0"

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

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def key(self) -> str:
        """The Kafka message key: the aggregate id named by ``key_field``."""
        return str(getattr(self.data, self.key_field)) if self.key_field else self.id

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


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
