"""Leaderboard rules: boosts, a score per user from completed cycles, speed and boosts,
and dense ranks.

Pure, and the reference for the leaderboard job's SQL (tested against it):

* completed cycles: cycles fulfilled at or before ``now``;
* average completion days: total time from creation to fulfilment / (count × 1 day),
  rounded half up to 0.01;
* score = (10 × completed + max(0, 30 − average days)) × multiplier, rounded half up
  to 0.01; a user with no completed cycle scores 0;
* multiplier: the largest boost active at ``now`` (boosts do not stack), else 1.00;
* rank: dense, by score (high first), then more completed cycles, then fewer average
  days; users equal on all three share a rank. Listing order ends with the user id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from schemas.escrow import BoostGranted
from service.errors import InvalidTransition
from service.workflows.escrow.rules import Cycle, CycleStatus

CENTS = Decimal("0.01")
POINTS_PER_CYCLE = 10
SPEED_DAYS = 30
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Boost:
    id: str
    user_id: str
    multiplier: Decimal
    granted_at: datetime
    expires_at: datetime
    expired_at: datetime | None = None


def grant(boost: Boost | None, event: BoostGranted) -> Boost:
    """A new boost from the event's time; a boost id is granted once."""
    data = event.data
    if boost is not None:
        raise InvalidTransition("boost", data.boost_id, "granted", event.type)
    return Boost(data.boost_id, data.user_id, data.multiplier, event.time, data.expires_at)


def boost_active(boost: Boost, now: datetime) -> bool:
    """Counts for the leaderboard at ``now``: granted already and not yet expired."""
    return boost.granted_at <= now < boost.expires_at


def should_expire(boost: Boost, now: datetime) -> bool:
    return boost.expired_at is None and boost.expires_at <= now


@dataclass(frozen=True)
class Standing:
    user_id: str
    completed_cycles: int
    average_completion_days: Decimal | None
    multiplier: Decimal
    score: Decimal
    rank: int = 0


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def average_days(durations: list[timedelta]) -> Decimal | None:
    if not durations:
        return None
    total_us = sum(d // timedelta(microseconds=1) for d in durations)
    return _cents(Decimal(total_us) / (len(durations) * (DAY // timedelta(microseconds=1))))


def score(completed: int, avg_days: Decimal | None, multiplier: Decimal) -> Decimal:
    if completed == 0 or avg_days is None:
        return Decimal("0.00")
    speed = max(Decimal(0), SPEED_DAYS - avg_days)
    return _cents((POINTS_PER_CYCLE * completed + speed) * multiplier)


def standing(
    user_id: str, cycles: Iterable[Cycle], boosts: Iterable[Boost], now: datetime
) -> Standing:
    """One user's unranked standing at ``now``."""
    durations = [
        c.fulfilled_at - c.created_at
        for c in cycles
        if c.user_id == user_id
        and c.status is CycleStatus.FULFILLED
        and c.fulfilled_at is not None
        and c.fulfilled_at <= now
    ]
    active = [b.multiplier for b in boosts if b.user_id == user_id and boost_active(b, now)]
    multiplier = max(active, default=Decimal("1.00"))
    avg = average_days(durations)
    return Standing(
        user_id, len(durations), avg, multiplier, score(len(durations), avg, multiplier)
    )


def _merit(s: Standing) -> tuple[Decimal, int, Decimal]:
    days = s.average_completion_days
    # Lower is better for days; a user with none sorts after every user with some.
    return (-s.score, -s.completed_cycles, days if days is not None else Decimal("Infinity"))


def rank(standings: Iterable[Standing]) -> list[Standing]:
    """Dense ranks from 1 in listing order (merit, then user id)."""
    ordered = sorted(standings, key=lambda s: (*_merit(s), s.user_id))
    ranked: list[Standing] = []
    for s in ordered:
        if not ranked:
            current = 1
        elif _merit(s) != _merit(ranked[-1]):
            current = ranked[-1].rank + 1
        else:
            current = ranked[-1].rank
        ranked.append(
            Standing(
                s.user_id,
                s.completed_cycles,
                s.average_completion_days,
                s.multiplier,
                s.score,
                current,
            )
        )
    return ranked


def leaderboard(
    users: Iterable[str], cycles: Iterable[Cycle], boosts: Iterable[Boost], now: datetime
) -> list[Standing]:
    cycles, boosts = list(cycles), list(boosts)
    return rank(standing(u, cycles, boosts, now) for u in users)
