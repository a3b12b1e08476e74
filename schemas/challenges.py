"""Challenge events: users (with their timezone), challenges, members, progress, notifications."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, model_validator

from schemas.envelope import CloudEvent, Id, Name, Payload, Text

CHALLENGES_INBOUND_TOPIC = "challenges.events"
CHALLENGES_OUTBOUND_TOPIC = "challenges.out"

_T = "2026-11-01T09:00:00Z"


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA timezone (e.g. 'Europe/Berlin')") from None
    return value


Timezone = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"),
    AfterValidator(_known_zone),
]
#: A share of the challenge done, 0 to 1 (0.8 is 80 %).
Rate = Annotated[Decimal, Field(ge=0, le=1, max_digits=5, decimal_places=4)]
Count = Annotated[int, Field(ge=0)]


def _example(type_: str, data: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "3a9e7c1d-5b2f-4e8a-9c6d-1f0e2d3c4b5a",
                    "source": "/challenges-service",
                    "type": type_,
                    "time": _T,
                    "data": data,
                }
            ]
        }
    )


class UserUpsertedData(Payload):
    """A user's profile; ``timezone`` decides when their local 08:00 is."""

    user_id: Id
    name: Name
    timezone: Timezone


class ChallengeCreatedData(Payload):
    """A challenge members can join until it ends."""

    challenge_id: Id
    title: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"ends_at {self.ends_at} must be after starts_at {self.starts_at}")
        return self


class ChallengeMemberJoinedData(Payload):
    """A user joined an active challenge."""

    challenge_id: Id
    user_id: Id


class ChallengeProgressRecordedData(Payload):
    """A member's completion rate so far (the latest by event time counts)."""

    challenge_id: Id
    user_id: Id
    completion_rate: Rate


class NotificationCreatedData(Payload):
    """An in-app notification shown to a user; deleted 30 days after its event time."""

    notification_id: Id
    user_id: Id
    title: Name
    body: Text = ""


class ChallengeClosedData(Payload):
    """Outbound base: a challenge ended and the members' average decided its outcome."""

    challenge_id: Id
    title: Name
    ends_at: AwareDatetime
    members: Count
    average_completion_rate: Rate


class ChallengeCompletedData(ChallengeClosedData):
    """Outbound: the members' average completion rate was at least 80 %."""


class ChallengeFailedData(ChallengeClosedData):
    """Outbound: the members' average completion rate was below 80 % (or nobody joined)."""


class ChallengeStatsUpdatedData(Payload):
    """Outbound: a challenge's row in the statistics view changed at a refresh."""

    challenge_id: Id
    status: Literal["active", "completed", "failed"]
    members: Count
    members_finished: Count
    average_completion_rate: Rate
    min_completion_rate: Rate
    max_completion_rate: Rate


class NotificationPurgedData(Payload):
    """Outbound: a notification older than the retention period was deleted."""

    notification_id: Id
    user_id: Id
    created_at: AwareDatetime


class UserUpserted(CloudEvent):
    model_config = _example(
        "user.upserted", {"user_id": "u-1", "name": "Ada Lovelace", "timezone": "Europe/Berlin"}
    )
    key_field = "user_id"
    type: Literal["user.upserted"] = "user.upserted"
    data: UserUpsertedData


class ChallengeCreated(CloudEvent):
    model_config = _example(
        "challenge.created",
        {
            "challenge_id": "ch-1",
            "title": "30 days of walking",
            "starts_at": "2026-11-01T00:00:00Z",
            "ends_at": "2026-12-01T00:00:00Z",
        },
    )
    key_field = "challenge_id"
    type: Literal["challenge.created"] = "challenge.created"
    data: ChallengeCreatedData


class ChallengeMemberJoined(CloudEvent):
    model_config = _example("challenge.member_joined", {"challenge_id": "ch-1", "user_id": "u-1"})
    key_field = "challenge_id"
    type: Literal["challenge.member_joined"] = "challenge.member_joined"
    data: ChallengeMemberJoinedData


class ChallengeProgressRecorded(CloudEvent):
    model_config = _example(
        "challenge.progress_recorded",
        {"challenge_id": "ch-1", "user_id": "u-1", "completion_rate": "0.4500"},
    )
    key_field = "challenge_id"
    type: Literal["challenge.progress_recorded"] = "challenge.progress_recorded"
    data: ChallengeProgressRecordedData


class NotificationCreated(CloudEvent):
    model_config = _example(
        "notification.created",
        {"notification_id": "n-1", "user_id": "u-1", "title": "You joined a challenge"},
    )
    key_field = "notification_id"
    type: Literal["notification.created"] = "notification.created"
    data: NotificationCreatedData


_CLOSED = {
    "challenge_id": "ch-1",
    "title": "30 days of walking",
    "ends_at": "2026-12-01T00:00:00Z",
    "members": 12,
}


class ChallengeCompleted(CloudEvent):
    model_config = _example("challenge.completed", _CLOSED | {"average_completion_rate": "0.8350"})
    key_field = "challenge_id"
    type: Literal["challenge.completed"] = "challenge.completed"
    data: ChallengeCompletedData


class ChallengeFailed(CloudEvent):
    model_config = _example("challenge.failed", _CLOSED | {"average_completion_rate": "0.6100"})
    key_field = "challenge_id"
    type: Literal["challenge.failed"] = "challenge.failed"
    data: ChallengeFailedData


class ChallengeStatsUpdated(CloudEvent):
    model_config = _example(
        "challenge.stats_updated",
        {
            "challenge_id": "ch-1",
            "status": "active",
            "members": 12,
            "members_finished": 2,
            "average_completion_rate": "0.5125",
            "min_completion_rate": "0.1000",
            "max_completion_rate": "1.0000",
        },
    )
    key_field = "challenge_id"
    type: Literal["challenge.stats_updated"] = "challenge.stats_updated"
    data: ChallengeStatsUpdatedData


class NotificationPurged(CloudEvent):
    model_config = _example(
        "notification.purged",
        {"notification_id": "n-1", "user_id": "u-1", "created_at": "2026-09-01T09:00:00Z"},
    )
    key_field = "notification_id"
    type: Literal["notification.purged"] = "notification.purged"
    data: NotificationPurgedData


#: Events about a challenge: the input of the challenge state machine.
ChallengeEvent = ChallengeCreated | ChallengeMemberJoined | ChallengeProgressRecorded

#: Everything an upstream service may publish on ``challenges.events``.
ChallengesInbound = Annotated[
    UserUpserted | NotificationCreated | ChallengeEvent,
    Field(discriminator="type"),
]

INBOUND = (
    UserUpserted,
    ChallengeCreated,
    ChallengeMemberJoined,
    ChallengeProgressRecorded,
    NotificationCreated,
)
OUTBOUND = (ChallengeCompleted, ChallengeFailed, ChallengeStatsUpdated, NotificationPurged)
