"""Claim review rules: a state machine as an Enum plus an allowed-transitions table.

Pure: no I/O, no clock. Time comes from the event (``event.time``) or, for the
timeout release, from the caller's ``now`` (the job's slot).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from schemas.claims import ClaimEvent, ClaimSubmitted
from service.errors import InvalidTransition


class ClaimStatus(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVISION_REQUESTED = "revision_requested"


S = ClaimStatus
TERMINAL = frozenset({S.APPROVED, S.REJECTED})
TIMEOUT_RELEASED = "claim.timeout_released"

#: (current status or None for a new claim, event type) -> next status
ALLOWED: dict[tuple[ClaimStatus | None, str], ClaimStatus] = {
    (None, "claim.submitted"): S.SUBMITTED,
    (S.SUBMITTED, "claim.review_started"): S.UNDER_REVIEW,
    (S.UNDER_REVIEW, "claim.approved"): S.APPROVED,
    (S.UNDER_REVIEW, "claim.rejected"): S.REJECTED,
    (S.UNDER_REVIEW, "claim.revision_requested"): S.REVISION_REQUESTED,
    (S.REVISION_REQUESTED, "claim.resubmitted"): S.SUBMITTED,
    (S.UNDER_REVIEW, "claim.review_released"): S.SUBMITTED,
    (S.UNDER_REVIEW, TIMEOUT_RELEASED): S.SUBMITTED,
}

#: Events that only the assigned reviewer may send.
BY_REVIEWER = frozenset(
    {"claim.approved", "claim.rejected", "claim.revision_requested", "claim.review_released"}
)


@dataclass(frozen=True)
class Claim:
    id: str
    task_id: str
    member_id: str
    status: ClaimStatus
    reviewer_id: str | None
    submitted_at: datetime
    review_started_at: datetime | None
    updated_at: datetime


def _next(claim: Claim | None, claim_id: str, event_type: str) -> ClaimStatus:
    current = claim.status if claim else None
    target = ALLOWED.get((current, event_type))
    if target is None:
        raise InvalidTransition("claim", claim_id, current, event_type)
    return target


def apply(claim: Claim | None, event: ClaimEvent) -> Claim:
    """The claim after ``event``; raises InvalidTransition if the event is not allowed."""
    data = event.data
    target = _next(claim, data.claim_id, event.type)
    if isinstance(event, ClaimSubmitted):
        return Claim(
            id=event.data.claim_id,
            task_id=event.data.task_id,
            member_id=event.data.member_id,
            status=target,
            reviewer_id=None,
            submitted_at=event.time,
            review_started_at=None,
            updated_at=event.time,
        )
    assert claim is not None  # only claim.submitted is allowed from None
    reviewer = getattr(data, "reviewer_id", None)
    if event.type in BY_REVIEWER and reviewer != claim.reviewer_id:
        error = InvalidTransition("claim", claim.id, claim.status, event.type)
        error.add_note(
            f"sent by reviewer {reviewer!r}; the assigned reviewer is {claim.reviewer_id!r}"
        )
        raise error
    under_review = target is S.UNDER_REVIEW
    return replace(
        claim,
        status=target,
        reviewer_id=reviewer if under_review else None,
        review_started_at=event.time if under_review else None,
        submitted_at=event.time if event.type == "claim.resubmitted" else claim.submitted_at,
        updated_at=event.time,
    )


def is_orphaned(claim: Claim, now: datetime, threshold_days: int) -> bool:
    """Under review, with no update for at least ``threshold_days`` (by event time)."""
    return claim.status is S.UNDER_REVIEW and claim.updated_at <= now - timedelta(
        days=threshold_days
    )


def days_orphaned(claim: Claim, now: datetime) -> int:
    """Whole days (floor, never negative) since the claim's last update."""
    return max(0, (now - claim.updated_at) // timedelta(days=1))


def release_by_timeout(claim: Claim, now: datetime) -> Claim:
    """Back to ``submitted`` with no reviewer, as of ``now`` (the job's slot time)."""
    target = _next(claim, claim.id, TIMEOUT_RELEASED)
    return replace(claim, status=target, reviewer_id=None, review_started_at=None, updated_at=now)
