"""Claim review rules: every (state, event) pair, the five paths, timeouts, invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.claims import (
    ClaimApproved,
    ClaimEvent,
    ClaimRejected,
    ClaimResubmitted,
    ClaimReviewReleased,
    ClaimReviewStarted,
    ClaimRevisionRequested,
    ClaimSubmitted,
)
from service.errors import InvalidTransition
from service.workflows.claims.rules import (
    ALLOWED,
    TERMINAL,
    Claim,
    ClaimStatus,
    apply,
    days_orphaned,
    is_orphaned,
    release_by_timeout,
)

S = ClaimStatus
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CLAIM, TASK, MEMBER, REVIEWER, OTHER = "c-1", "t-1", "m-1", "r-1", "r-2"

EVENTS: dict[str, Any] = {
    "claim.submitted": ClaimSubmitted,
    "claim.review_started": ClaimReviewStarted,
    "claim.approved": ClaimApproved,
    "claim.rejected": ClaimRejected,
    "claim.revision_requested": ClaimRevisionRequested,
    "claim.resubmitted": ClaimResubmitted,
    "claim.review_released": ClaimReviewReleased,
}


def event(type_: str, *, reviewer: str = REVIEWER, time: datetime = T0) -> ClaimEvent:
    """A valid claim event of ``type_`` for claim c-1."""
    data: dict[str, Any] = {"claim_id": CLAIM}
    if type_ == "claim.submitted":
        data |= {"task_id": TASK, "member_id": MEMBER}
    elif type_ != "claim.resubmitted":
        data["reviewer_id"] = reviewer
    if type_ == "claim.rejected":
        data["reason"] = "no evidence"
    if type_ == "claim.revision_requested":
        data["note"] = "add a photo"
    built: ClaimEvent = EVENTS[type_](id=f"e-{type_}", source="/test", time=time, data=data)
    return built


def claim_in(status: ClaimStatus | None, *, at: datetime = T0) -> Claim | None:
    """A claim in ``status`` (assigned to REVIEWER when under review); None for absent."""
    if status is None:
        return None
    under_review = status is S.UNDER_REVIEW
    return Claim(
        id=CLAIM,
        task_id=TASK,
        member_id=MEMBER,
        status=status,
        reviewer_id=REVIEWER if under_review else None,
        submitted_at=at,
        review_started_at=at if under_review else None,
        updated_at=at,
    )


# Written out by hand rather than read from ALLOWED, so the table checks the rules.
LEGAL: dict[tuple[ClaimStatus | None, str], ClaimStatus] = {
    (None, "claim.submitted"): S.SUBMITTED,
    (S.SUBMITTED, "claim.review_started"): S.UNDER_REVIEW,
    (S.UNDER_REVIEW, "claim.approved"): S.APPROVED,
    (S.UNDER_REVIEW, "claim.rejected"): S.REJECTED,
    (S.UNDER_REVIEW, "claim.revision_requested"): S.REVISION_REQUESTED,
    (S.UNDER_REVIEW, "claim.review_released"): S.SUBMITTED,
    (S.REVISION_REQUESTED, "claim.resubmitted"): S.SUBMITTED,
}
STATES: list[ClaimStatus | None] = [None, *ClaimStatus]
PAIRS = [(state, type_) for state in STATES for type_ in EVENTS]


def test_table_matches_the_rules_module() -> None:
    inbound = {key: value for key, value in ALLOWED.items() if key[1] in EVENTS}
    assert inbound == LEGAL
    assert TERMINAL == {S.APPROVED, S.REJECTED}


@pytest.mark.parametrize(("state", "type_"), PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_every_state_and_event_pair(state: ClaimStatus | None, type_: str) -> None:
    later = T0 + timedelta(hours=1)
    before = claim_in(state)
    expected = LEGAL.get((state, type_))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            apply(before, event(type_, time=later))
        assert (caught.value.entity, caught.value.entity_id) == ("claim", CLAIM)
        assert caught.value.state == state
        assert caught.value.event_type == type_
        return
    after = apply(before, event(type_, time=later))
    assert after.status is expected
    assert after.updated_at == later
    assert (after.reviewer_id is not None) == (expected is S.UNDER_REVIEW)


@pytest.mark.parametrize(
    "type_",
    ["claim.approved", "claim.rejected", "claim.revision_requested", "claim.review_released"],
)
def test_only_the_assigned_reviewer_may_decide(type_: str) -> None:
    with pytest.raises(InvalidTransition) as caught:
        apply(claim_in(S.UNDER_REVIEW), event(type_, reviewer=OTHER))
    assert caught.value.state == S.UNDER_REVIEW
    assert caught.value.headers()["x-state"] == "under_review"


def test_submitting_an_existing_claim_is_invalid() -> None:
    with pytest.raises(InvalidTransition):
        apply(claim_in(S.SUBMITTED), event("claim.submitted"))


def run(*steps: tuple[str, str], start: datetime = T0) -> Claim:
    """Apply (event type, reviewer) steps one hour apart from ``start``."""
    claim: Claim | None = None
    for hour, (type_, reviewer) in enumerate(steps):
        claim = apply(claim, event(type_, reviewer=reviewer, time=start + timedelta(hours=hour)))
    assert claim is not None
    return claim


def test_path_approve() -> None:
    claim = run(
        ("claim.submitted", ""), ("claim.review_started", REVIEWER), ("claim.approved", REVIEWER)
    )
    assert (claim.status, claim.reviewer_id) == (S.APPROVED, None)
    assert claim.submitted_at == T0
    assert claim.updated_at == T0 + timedelta(hours=2)


def test_path_reject() -> None:
    claim = run(
        ("claim.submitted", ""), ("claim.review_started", REVIEWER), ("claim.rejected", REVIEWER)
    )
    assert (claim.status, claim.reviewer_id) == (S.REJECTED, None)


def test_path_revision_then_resubmit_then_approve_by_another_reviewer() -> None:
    claim = run(
        ("claim.submitted", ""),
        ("claim.review_started", REVIEWER),
        ("claim.revision_requested", REVIEWER),
        ("claim.resubmitted", ""),
        ("claim.review_started", OTHER),
        ("claim.approved", OTHER),
    )
    assert claim.status is S.APPROVED
    assert claim.updated_at == T0 + timedelta(hours=5)


def test_revision_requested_clears_the_reviewer() -> None:
    claim = run(
        ("claim.submitted", ""),
        ("claim.review_started", REVIEWER),
        ("claim.revision_requested", REVIEWER),
    )
    assert (claim.status, claim.reviewer_id, claim.review_started_at) == (
        S.REVISION_REQUESTED,
        None,
        None,
    )


def test_path_release_by_reviewer() -> None:
    claim = run(
        ("claim.submitted", ""),
        ("claim.review_started", REVIEWER),
        ("claim.review_released", REVIEWER),
        ("claim.review_started", OTHER),
    )
    assert (claim.status, claim.reviewer_id) == (S.UNDER_REVIEW, OTHER)
    assert claim.review_started_at == T0 + timedelta(hours=3)


def test_path_release_by_timeout() -> None:
    claim = run(("claim.submitted", ""), ("claim.review_started", REVIEWER))
    now = claim.updated_at + timedelta(days=9, hours=5)
    assert is_orphaned(claim, now, threshold_days=7)
    assert days_orphaned(claim, now) == 9
    released = release_by_timeout(claim, now)
    assert (released.status, released.reviewer_id, released.review_started_at) == (
        S.SUBMITTED,
        None,
        None,
    )
    assert released.updated_at == now
    again = apply(released, event("claim.review_started", reviewer=OTHER, time=now))
    assert again.reviewer_id == OTHER


@pytest.mark.parametrize("status", [s for s in ClaimStatus if s is not S.UNDER_REVIEW])
def test_release_by_timeout_needs_a_claim_under_review(status: ClaimStatus) -> None:
    claim = claim_in(status)
    assert claim is not None
    assert not is_orphaned(claim, T0 + timedelta(days=30), threshold_days=7)
    with pytest.raises(InvalidTransition) as caught:
        release_by_timeout(claim, T0 + timedelta(days=30))
    assert caught.value.event_type == "claim.timeout_released"


@pytest.mark.parametrize(
    ("elapsed", "orphaned", "days"),
    [
        (timedelta(days=6), False, 6),
        (timedelta(days=7) - timedelta(microseconds=1), False, 6),
        (timedelta(days=7), True, 7),
        (timedelta(days=7, hours=23, minutes=59), True, 7),
        (timedelta(days=8), True, 8),
        (timedelta(0), False, 0),
        (-timedelta(hours=1), False, 0),
    ],
)
def test_orphaned_boundary(elapsed: timedelta, orphaned: bool, days: int) -> None:
    claim = claim_in(S.UNDER_REVIEW)
    assert claim is not None
    assert is_orphaned(claim, T0 + elapsed, threshold_days=7) is orphaned
    assert days_orphaned(claim, T0 + elapsed) == days


steps = st.lists(
    st.tuples(
        st.sampled_from(sorted(EVENTS)),
        st.sampled_from([REVIEWER, OTHER]),
        st.datetimes(
            min_value=datetime(2020, 1, 1),
            max_value=datetime(2030, 1, 1),
            timezones=st.just(UTC),
        ),
    ),
    max_size=30,
)


@given(steps)
def test_invariants_hold_over_any_event_sequence(
    sequence: list[tuple[str, str, datetime]],
) -> None:
    claim: Claim | None = None
    last_applied: datetime | None = None
    for type_, reviewer, time in sequence:
        was_terminal = claim is not None and claim.status in TERMINAL
        try:
            claim = apply(claim, event(type_, reviewer=reviewer, time=time))
        except InvalidTransition:
            continue
        assert not was_terminal, "a terminal claim accepted another event"
        last_applied = time
        under_review = claim.status is S.UNDER_REVIEW
        assert (claim.reviewer_id is not None) == under_review
        assert (claim.review_started_at is not None) == under_review
        assert claim.updated_at == last_applied
    if claim is not None and claim.status in TERMINAL:
        for type_ in EVENTS:
            with pytest.raises(InvalidTransition):
                apply(claim, event(type_))
