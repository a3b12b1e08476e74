"""Escrow demo data: donations past and within their hold, cycles due soon, overdue and
done, matches old and new, one live and one lapsed boost, so every escrow job has work."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.envelope import CloudEvent, make
from schemas.escrow import (
    ESCROW_INBOUND_TOPIC,
    BoostGranted,
    CycleCreated,
    CycleFulfilled,
    DonationConfirmed,
    MatchAccepted,
    MatchCreated,
)

NS = uuid.UUID("b2a4e3f0-6c1d-4e55-8f0a-3d7c9e1b2a02")
SOURCE = "/demo"
H = timedelta(hours=1)
D = timedelta(days=1)

# (cycle, user, amount, due in days from today, created days ago, fulfilled days ago)
CYCLES: list[tuple[str, str, str, int, int, int | None]] = [
    ("cy-bo-1", "u-bo", "40.00", 7, 3, None),  # funded below, then reminded
    ("cy-dana-1", "u-dana", "25.50", -1, 9, None),  # funded below, then defaulted
    ("cy-chen-1", "u-chen", "15.00", 20, 1, None),  # its donation is still held
    ("cy-amara-0", "u-amara", "30.00", -10, 30, 20),
    ("cy-eli-0", "u-eli", "20.00", -15, 25, 22),
    ("cy-eli-1", "u-eli", "20.00", -2, 18, 9),
    ("cy-bo-0", "u-bo", "10.00", -4, 15, 5),
]
# (escrow, donor, recipient, amount, cycle, hours since confirmation)
DONATIONS: list[tuple[str, str, str, str, str | None, int]] = [
    ("e-2001", "u-amara", "u-bo", "40.00", "cy-bo-1", 60),
    ("e-2002", "u-chen", "u-dana", "25.50", "cy-dana-1", 50),
    ("e-2003", "u-eli", "u-fatima", "100.00", None, 10),
    ("e-2004", "u-amara", "u-chen", "15.00", "cy-chen-1", 3),
]
# (match, donor, recipient, hours since creation, accepted after hours or None)
MATCHES: list[tuple[str, str, str, int, int | None]] = [
    ("ma-1", "u-eli", "u-dana", 30, None),
    ("ma-2", "u-fatima", "u-bo", 2, None),
    ("ma-3", "u-chen", "u-amara", 10, 2),
]
# (boost, user, multiplier, granted days ago, expires in days)
BOOSTS: list[tuple[str, str, str, int, int]] = [
    ("b-1", "u-bo", "1.50", 2, 3),
    ("b-2", "u-eli", "2.00", 8, -1),
]


def _event(cls: type[CloudEvent], seed: str, time: datetime, **data: Any) -> CloudEvent:
    return make(cls, time, source=SOURCE, event_id=str(uuid.uuid5(NS, seed)), **data)


def demo_events(now: datetime) -> list[tuple[str, CloudEvent]]:
    today = now.date()
    events: list[CloudEvent] = []
    for cycle_id, user, amount, due_in, created, fulfilled in CYCLES:
        events.append(
            _event(
                CycleCreated,
                f"{cycle_id}:created",
                now - created * D,
                cycle_id=cycle_id,
                user_id=user,
                amount=Decimal(amount),
                due_date=today + due_in * D,
            )
        )
        if fulfilled is not None:
            events.append(
                _event(
                    CycleFulfilled, f"{cycle_id}:fulfilled", now - fulfilled * D, cycle_id=cycle_id
                )
            )
    for escrow_id, donor, recipient, amount, funds, hours in DONATIONS:
        events.append(
            _event(
                DonationConfirmed,
                escrow_id,
                now - hours * H,
                escrow_id=escrow_id,
                donor_id=donor,
                recipient_id=recipient,
                amount=Decimal(amount),
                cycle_id=funds,
            )
        )
    for match_id, donor, recipient, hours, accepted in MATCHES:
        created_at = now - hours * H
        events.append(
            _event(
                MatchCreated,
                f"{match_id}:created",
                created_at,
                match_id=match_id,
                donor_id=donor,
                recipient_id=recipient,
            )
        )
        if accepted is not None:
            events.append(
                _event(
                    MatchAccepted,
                    f"{match_id}:accepted",
                    created_at + accepted * H,
                    match_id=match_id,
                )
            )
    for boost_id, user, multiplier, granted, expires in BOOSTS:
        events.append(
            _event(
                BoostGranted,
                boost_id,
                now - granted * D,
                boost_id=boost_id,
                user_id=user,
                multiplier=Decimal(multiplier),
                expires_at=now + expires * D,
            )
        )
    return [(ESCROW_INBOUND_TOPIC, e) for e in events]
