"""Challenge rules: a challenge state machine, membership and progress by event time, the
outcome at the end, streak reminders in each user's local day, notification retention.

Pure: no I/O, no clock. Event rules read ``event.time``; job rules take ``now`` (the
slot time) and are the reference the jobs' SQL is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from schemas.challenges import (
    ChallengeCreated,
    ChallengeMemberJoined,
    ChallengeProgressRecorded,
)
from service.errors import InvalidTransition

#: The members' average completion rate at which a challenge counts as completed.
COMPLETION_THRESHOLD = Decimal("0.80")
RETENTION_DAYS = 30

COMPLETED = "challenge.completed"
FAILED = "challenge.failed"
JOINED = "challenge.member_joined"
PROGRESS = "challenge.progress_recorded"


class ChallengeStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


S = ChallengeStatus
TERMINAL = frozenset({S.COMPLETED, S.FAILED})

#: (current status or None for a new challenge, event type) -> next status.
#: Members join and record progress only while a challenge is active.
ALLOWED: dict[tuple[ChallengeStatus | None, str], ChallengeStatus] = {
    (None, "challenge.created"): S.ACTIVE,
    (S.ACTIVE, JOINED): S.ACTIVE,
    (S.ACTIVE, PROGRESS): S.ACTIVE,
    (S.ACTIVE, COMPLETED): S.COMPLETED,
    (S.ACTIVE, FAILED): S.FAILED,
}


@dataclass(frozen=True)
class Challenge:
    id: str
    title: str
    status: ChallengeStatus
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    closed_at: datetime | None = None
    member_count: int | None = None
    average_completion_rate: Decimal | None = None


@dataclass(frozen=True)
class Member:
    challenge_id: str
    user_id: str
    joined_at: datetime
    completion_rate: Decimal = Decimal("0.0000")
    progress_at: datetime | None = None


def _check(challenge: Challenge | None, challenge_id: str, event_type: str) -> ChallengeStatus:
    current = challenge.status if challenge else None
    target = ALLOWED.get((current, event_type))
    if target is None:
        raise InvalidTransition("challenge", challenge_id, current, event_type)
    return target


def create(challenge: Challenge | None, event: ChallengeCreated) -> Challenge:
    data = event.data
    target = _check(challenge, data.challenge_id, event.type)
    return Challenge(
        data.challenge_id, data.title, target, data.starts_at, data.ends_at, event.time
    )


def _before_end(challenge: Challenge, at: datetime, event_type: str) -> None:
    if at >= challenge.ends_at:
        error = InvalidTransition("challenge", challenge.id, challenge.status, event_type)
        error.add_note(f"the event happened at {at}, the challenge ended at {challenge.ends_at}")
        raise error


def join(
    challenge: Challenge | None, member: Member | None, event: ChallengeMemberJoined
) -> Member:
    """A new member of an active challenge that had not ended when they joined."""
    data = event.data
    _check(challenge, data.challenge_id, event.type)
    assert challenge is not None
    _before_end(challenge, event.time, event.type)
    if member is not None:
        member_id = f"{data.challenge_id}/{data.user_id}"
        raise InvalidTransition("challenge_member", member_id, "joined", event.type)
    return Member(data.challenge_id, data.user_id, event.time)


def record_progress(
    challenge: Challenge | None, member: Member | None, event: ChallengeProgressRecorded
) -> Member:
    """The member's rate as of the event; an older report than the last one changes nothing."""
    data = event.data
    _check(challenge, data.challenge_id, event.type)
    assert challenge is not None
    _before_end(challenge, event.time, event.type)
    if member is None:
        member_id = f"{data.challenge_id}/{data.user_id}"
        raise InvalidTransition("challenge_member", member_id, None, event.type)
    if member.progress_at is not None and event.time < member.progress_at:
        return member
    return replace(member, completion_rate=data.completion_rate, progress_at=event.time)


def is_due(challenge: Challenge, now: datetime) -> bool:
    """Active and past its end at ``now``: the auto-complete job closes it."""
    return challenge.status is S.ACTIVE and challenge.ends_at <= now


def outcome(rates: Iterable[Decimal]) -> ChallengeStatus:
    """Completed when the members' average rate is at least 80 %; failed otherwise,
    also when nobody joined. Compared as sum >= 0.80 × count, exactly."""
    rates = list(rates)
    if rates and sum(rates, Decimal(0)) >= COMPLETION_THRESHOLD * len(rates):
        return S.COMPLETED
    return S.FAILED


def average(rates: Iterable[Decimal]) -> Decimal:
    """The mean rate rounded half up to four places (0 for no members)."""
    rates = list(rates)
    if not rates:
        return Decimal("0.0000")
    mean = sum(rates, Decimal(0)) / len(rates)
    return mean.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def close(challenge: Challenge, rates: Iterable[Decimal], now: datetime) -> Challenge:
    rates = list(rates)
    result = outcome(rates)
    target = _check(challenge, challenge.id, COMPLETED if result is S.COMPLETED else FAILED)
    return replace(
        challenge,
        status=target,
        closed_at=now,
        member_count=len(rates),
        average_completion_rate=average(rates),
    )


def local_date(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def local_day_start(now: datetime, timezone: str) -> datetime:
    """The instant the user's local day containing ``now`` began (DST-aware)."""
    zone = ZoneInfo(timezone)
    return datetime.combine(local_date(now, timezone), time(0), zone)


def needs_streak_reminder(
    timezone: str,
    reminded_on: date | None,
    memberships: Iterable[tuple[Challenge, Member]],
    now: datetime,
) -> bool:
    """Remind a user once per local day when, in a challenge running at ``now``, they
    have recorded no progress since their local midnight."""
    today = local_date(now, timezone)
    if reminded_on is not None and reminded_on >= today:
        return False
    midnight = local_day_start(now, timezone)
    return any(
        c.status is S.ACTIVE
        and c.starts_at <= now < c.ends_at
        and (m.progress_at is None or m.progress_at < midnight)
        for c, m in memberships
    )


def is_purgeable(created_at: datetime, now: datetime, retention_days: int = RETENTION_DAYS) -> bool:
    """Strictly older than the retention period at ``now``."""
    return created_at < now - timedelta(days=retention_days)
