"""Escrow rules: escrows, matches and obligation cycles as small state machines, and the
arithmetic of a release and of a default (boosts and scores: ``leaderboard.py``).

Pure: no I/O, no clock. Rules for inbound events read ``event.time``; rules the jobs
implement in SQL take ``now`` (the job's slot time) and are the reference the SQL is
tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from schemas.escrow import (
    CycleCreated,
    CycleFulfilled,
    DonationConfirmed,
    MatchAccepted,
    MatchCreated,
)
from service.errors import InvalidTransition

HOLD = timedelta(hours=48)
MATCH_TTL = timedelta(hours=24)
DONOR_COINS = 50
REMINDER_DAYS = 7
DEFAULT_PENALTY = Decimal("0.10")
INITIAL_TRUST = Decimal("1.00")

RELEASED = "escrow.released"
MATCH_EXPIRED = "match.expired"
OBLIGATED = "cycle.obligated"
DEFAULTED = "cycle.defaulted"


class EscrowStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"


class MatchStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"


class CycleStatus(StrEnum):
    PENDING = "pending"
    OBLIGATED = "obligated"
    FULFILLED = "fulfilled"
    DEFAULTED = "defaulted"


E, M, C = EscrowStatus, MatchStatus, CycleStatus

#: (current status or None for a new aggregate, event type) -> next status
ESCROW_ALLOWED: dict[tuple[EscrowStatus | None, str], EscrowStatus] = {
    (None, "donation.confirmed"): E.HELD,
    (E.HELD, RELEASED): E.RELEASED,
}
MATCH_ALLOWED: dict[tuple[MatchStatus | None, str], MatchStatus] = {
    (None, "match.created"): M.PENDING,
    (M.PENDING, "match.accepted"): M.ACCEPTED,
    (M.PENDING, MATCH_EXPIRED): M.EXPIRED,
}
CYCLE_ALLOWED: dict[tuple[CycleStatus | None, str], CycleStatus] = {
    (None, "cycle.created"): C.PENDING,
    (C.PENDING, OBLIGATED): C.OBLIGATED,
    (C.PENDING, "cycle.fulfilled"): C.FULFILLED,
    (C.OBLIGATED, "cycle.fulfilled"): C.FULFILLED,
    (C.OBLIGATED, DEFAULTED): C.DEFAULTED,
}

_S = TypeVar("_S", bound=StrEnum)


def _next(
    table: Mapping[tuple[_S | None, str], _S],
    entity: str,
    entity_id: str,
    current: _S | None,
    event_type: str,
) -> _S:
    target = table.get((current, event_type))
    if target is None:
        raise InvalidTransition(entity, entity_id, current, event_type)
    return target


@dataclass(frozen=True)
class Escrow:
    id: str
    donor_id: str
    recipient_id: str
    amount: Decimal
    cycle_id: str | None
    status: EscrowStatus
    confirmed_at: datetime
    release_at: datetime
    released_at: datetime | None = None


@dataclass(frozen=True)
class Account:
    """A user's balances; ``receivable`` is money held in escrow for them."""

    user_id: str
    receivable: Decimal = Decimal("0.00")
    fiat: Decimal = Decimal("0.00")
    charity_coins: int = 0
    trust_score: Decimal = INITIAL_TRUST


def confirm(escrow: Escrow | None, event: DonationConfirmed) -> Escrow:
    """A new escrow held until 48 h after the donation was confirmed (by event time)."""
    data = event.data
    _next(ESCROW_ALLOWED, "escrow", data.escrow_id, escrow.status if escrow else None, event.type)
    return Escrow(
        id=data.escrow_id,
        donor_id=data.donor_id,
        recipient_id=data.recipient_id,
        amount=data.amount,
        cycle_id=data.cycle_id,
        status=E.HELD,
        confirmed_at=event.time,
        release_at=event.time + HOLD,
    )


def credit(account: Account, amount: Decimal) -> Account:
    """The recipient's receivable grows by a confirmed donation."""
    return replace(account, receivable=account.receivable + amount)


def is_due(escrow: Escrow, now: datetime) -> bool:
    return escrow.status is E.HELD and escrow.release_at <= now


def release(escrow: Escrow, now: datetime) -> Escrow:
    _next(ESCROW_ALLOWED, "escrow", escrow.id, escrow.status, RELEASED)
    return replace(escrow, status=E.RELEASED, released_at=now)


def release_due(
    accounts: Mapping[str, Account], escrows: Iterable[Escrow], now: datetime
) -> tuple[dict[str, Account], list[Escrow]]:
    """What the release job does: every due escrow released, its amount moved from the
    recipient's receivable to their fiat balance, its donor given ``DONOR_COINS``.

    Returns the accounts after and the escrows released. Money only moves between
    two balances of one user, so the sum of all balances never changes.
    """
    after = dict(accounts)
    released = []
    for escrow in escrows:
        if not is_due(escrow, now):
            continue
        released.append(release(escrow, now))
        recipient = after[escrow.recipient_id]
        after[escrow.recipient_id] = replace(
            recipient,
            receivable=recipient.receivable - escrow.amount,
            fiat=recipient.fiat + escrow.amount,
        )
        donor = after[escrow.donor_id]
        after[escrow.donor_id] = replace(donor, charity_coins=donor.charity_coins + DONOR_COINS)
    return after, released


@dataclass(frozen=True)
class Match:
    id: str
    donor_id: str
    recipient_id: str
    status: MatchStatus
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


def apply_match(match: Match | None, event: MatchCreated | MatchAccepted) -> Match:
    """A new pending match, or its acceptance; accepting at or after expiry is invalid."""
    match_id = event.data.match_id
    target = _next(MATCH_ALLOWED, "match", match_id, match.status if match else None, event.type)
    if isinstance(event, MatchCreated):
        data = event.data
        return Match(
            id=match_id,
            donor_id=data.donor_id,
            recipient_id=data.recipient_id,
            status=target,
            created_at=event.time,
            expires_at=event.time + MATCH_TTL,
            updated_at=event.time,
        )
    assert match is not None  # only match.created is allowed from None
    if event.time >= match.expires_at:
        error = InvalidTransition("match", match_id, match.status, event.type)
        error.add_note(f"accepted at {event.time}, the match expired at {match.expires_at}")
        raise error
    return replace(match, status=target, updated_at=event.time)


def is_expired(match: Match, now: datetime) -> bool:
    return match.status is M.PENDING and match.expires_at <= now


def expire_match(match: Match, now: datetime) -> Match:
    target = _next(MATCH_ALLOWED, "match", match.id, match.status, MATCH_EXPIRED)
    return replace(match, status=target, updated_at=now)


@dataclass(frozen=True)
class Cycle:
    id: str
    user_id: str
    amount: Decimal
    due_date: date
    status: CycleStatus
    created_at: datetime
    obligated_at: datetime | None = None
    fulfilled_at: datetime | None = None
    defaulted_at: datetime | None = None
    reminded_at: datetime | None = None


def apply_cycle(cycle: Cycle | None, event: CycleCreated | CycleFulfilled) -> Cycle:
    """A new pending cycle, or its fulfilment (at the event's time)."""
    cycle_id = event.data.cycle_id
    target = _next(CYCLE_ALLOWED, "cycle", cycle_id, cycle.status if cycle else None, event.type)
    if isinstance(event, CycleCreated):
        data = event.data
        return Cycle(
            id=cycle_id,
            user_id=data.user_id,
            amount=data.amount,
            due_date=data.due_date,
            status=target,
            created_at=event.time,
        )
    assert cycle is not None  # only cycle.created is allowed from None
    return replace(cycle, status=target, fulfilled_at=event.time)


def obligate(cycle: Cycle, now: datetime) -> Cycle:
    """The donation funding the cycle was released: the obligation now runs."""
    target = _next(CYCLE_ALLOWED, "cycle", cycle.id, cycle.status, OBLIGATED)
    return replace(cycle, status=target, obligated_at=now)


def needs_reminder(cycle: Cycle, today: date) -> bool:
    """Obligated, due in exactly ``REMINDER_DAYS`` days, and not reminded before."""
    return (
        cycle.status is C.OBLIGATED
        and cycle.reminded_at is None
        and (cycle.due_date - today).days == REMINDER_DAYS
    )


def remind(cycle: Cycle, now: datetime) -> Cycle:
    """Remember the reminder in the cycle, so that it is never sent twice."""
    return replace(cycle, reminded_at=now)


def is_overdue(cycle: Cycle, today: date) -> bool:
    """Obligated and its due date is over (``today`` is the job's local date)."""
    return cycle.status is C.OBLIGATED and cycle.due_date < today


def default(cycle: Cycle, now: datetime) -> Cycle:
    target = _next(CYCLE_ALLOWED, "cycle", cycle.id, cycle.status, DEFAULTED)
    return replace(cycle, status=target, defaulted_at=now)


def penalize(trust_score: Decimal, defaults: int = 1) -> Decimal:
    """The trust score after ``defaults`` defaults: 0.10 less each, never below 0."""
    return max(Decimal("0.00"), trust_score - DEFAULT_PENALTY * defaults)
