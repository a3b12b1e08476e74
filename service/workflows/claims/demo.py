"""Claims demo data: members, tasks, and claims of which some have been under review 8-20 days."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from schemas.claims import (
    CLAIMS_INBOUND_TOPIC,
    ClaimReviewStarted,
    ClaimSubmitted,
    MemberUpserted,
    TaskUpserted,
)
from schemas.envelope import CloudEvent, make

NS = uuid.UUID("6f1c1d6e-9a57-4c57-9d0e-6a4a3f1b2c01")
SOURCE = "/demo"

MEMBERS = [
    ("m-ada", "Ada Lovelace"),
    ("m-alan", "Alan Turing"),
    ("m-grace", "Grace Hopper"),
    ("m-edsger", "Edsger Dijkstra"),
    ("m-barbara", "Barbara Liskov"),
    ("m-ken", "Ken Thompson"),
]
TASKS = [
    ("t-docs", "Translate the onboarding guide"),
    ("t-audit", "Audit the Q3 donation receipts"),
    ("t-photos", "Photograph the community garden"),
    ("t-survey", "Run the volunteer survey"),
    ("t-repair", "Repair the shelter's bicycles"),
]
# (claim, task, claimant, reviewer or None, days since the review started)
CLAIMS: list[tuple[str, str, str, str | None, int]] = [
    ("c-1001", "t-docs", "m-ada", "m-grace", 20),
    ("c-1002", "t-audit", "m-alan", "m-barbara", 14),
    ("c-1003", "t-photos", "m-ken", "m-grace", 11),
    ("c-1004", "t-survey", "m-edsger", "m-barbara", 8),
    ("c-1005", "t-repair", "m-ada", "m-grace", 3),
    ("c-1006", "t-docs", "m-alan", "m-barbara", 1),
    ("c-1007", "t-audit", "m-ken", None, 0),
]


def _event(cls: type[CloudEvent], seed: str, time: datetime, **data: Any) -> CloudEvent:
    return make(cls, time, source=SOURCE, event_id=str(uuid.uuid5(NS, seed)), **data)


def demo_events(now: datetime) -> list[tuple[str, CloudEvent]]:
    events: list[CloudEvent] = []
    start = now - timedelta(days=30)
    for member_id, name in MEMBERS:
        events.append(_event(MemberUpserted, member_id, start, member_id=member_id, name=name))
    for task_id, title in TASKS:
        events.append(_event(TaskUpserted, task_id, start, task_id=task_id, title=title))
    for claim_id, task_id, member_id, reviewer, days in CLAIMS:
        review_at = now - timedelta(days=days, hours=1)
        events.append(
            _event(
                ClaimSubmitted,
                f"{claim_id}:submitted",
                review_at - timedelta(hours=5),
                claim_id=claim_id,
                task_id=task_id,
                member_id=member_id,
            )
        )
        if reviewer:
            events.append(
                _event(
                    ClaimReviewStarted,
                    f"{claim_id}:review",
                    review_at,
                    claim_id=claim_id,
                    reviewer_id=reviewer,
                )
            )
    return [(CLAIMS_INBOUND_TOPIC, e) for e in events]
