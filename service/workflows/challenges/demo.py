"""Challenges demo data: users in four timezones, challenges ended (one on track to be
completed, one to fail) and running, their members and progress, and notifications of
which some are past the 30-day retention."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.challenges import (
    CHALLENGES_INBOUND_TOPIC,
    ChallengeCreated,
    ChallengeMemberJoined,
    ChallengeProgressRecorded,
    NotificationCreated,
    UserUpserted,
)
from schemas.envelope import CloudEvent, make

NS = uuid.UUID("c3b5f4a1-7d2e-4f66-9a1b-4e8d0f2c3b03")
SOURCE = "/demo"
D = timedelta(days=1)

USERS = [
    ("u-lena", "Lena Fischer", "Europe/Berlin"),
    ("u-jonas", "Jonas Weber", "Europe/Berlin"),
    ("u-maya", "Maya Johnson", "America/New_York"),
    ("u-kenji", "Kenji Sato", "Asia/Tokyo"),
    ("u-amara", "Amara Okafor", "UTC"),
]
# (challenge, title, started days ago, ends in days (negative: ended), members with rates)
CHALLENGES: list[tuple[str, str, int, int, list[tuple[str, str]]]] = [
    (
        "ch-walk",
        "10,000 steps a day",
        31,
        -1,
        [("u-lena", "0.9500"), ("u-maya", "0.8000"), ("u-kenji", "0.7500")],
    ),
    ("ch-read", "A book a week", 29, -1, [("u-jonas", "0.4000"), ("u-amara", "0.6500")]),
    ("ch-water", "Two litres of water", 10, 20, [("u-lena", "0.3000"), ("u-maya", "0.5000")]),
    ("ch-sleep", "Lights out by 23:00", 3, 27, [("u-kenji", "0.1000"), ("u-amara", "0.0000")]),
]
# (notification, user, days ago)
NOTIFICATIONS = [
    ("n-old-1", "u-lena", 45),
    ("n-old-2", "u-maya", 35),
    ("n-old-3", "u-kenji", 31),
    ("n-new-1", "u-lena", 20),
    ("n-new-2", "u-amara", 2),
]


def _event(cls: type[CloudEvent], seed: str, time: datetime, **data: Any) -> CloudEvent:
    return make(cls, time, source=SOURCE, event_id=str(uuid.uuid5(NS, seed)), **data)


def demo_events(now: datetime) -> list[tuple[str, CloudEvent]]:
    events: list[CloudEvent] = []
    first = now - 60 * D
    for user_id, name, timezone in USERS:
        events.append(
            _event(UserUpserted, user_id, first, user_id=user_id, name=name, timezone=timezone)
        )
    for challenge_id, title, started, ends_in, members in CHALLENGES:
        starts_at = now - started * D
        events.append(
            _event(
                ChallengeCreated,
                challenge_id,
                starts_at - D,
                challenge_id=challenge_id,
                title=title,
                starts_at=starts_at,
                ends_at=now + ends_in * D,
            )
        )
        for user_id, rate in members:
            ids = {"challenge_id": challenge_id, "user_id": user_id}
            events.append(
                _event(ChallengeMemberJoined, f"{challenge_id}:{user_id}", starts_at, **ids)
            )
            events.append(
                _event(
                    ChallengeProgressRecorded,
                    f"{challenge_id}:{user_id}:progress",
                    starts_at + (started - 2) * D,
                    completion_rate=Decimal(rate),
                    **ids,
                )
            )
    for notification_id, user_id, days in NOTIFICATIONS:
        events.append(
            _event(
                NotificationCreated,
                notification_id,
                now - days * D,
                notification_id=notification_id,
                user_id=user_id,
                title="Your challenge summary is ready",
            )
        )
    return [(CHALLENGES_INBOUND_TOPIC, e) for e in events]
