"""Claim review events: members, tasks and the claim lifecycle."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from schemas.envelope import CloudEvent, Id, Name, Payload, Text

CLAIMS_INBOUND_TOPIC = "claims.events"
CLAIMS_OUTBOUND_TOPIC = "claims.out"

_T = "2026-11-01T09:00:00Z"


def _example(type_: str, data: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "4f6c0a8e-2d3b-4c55-9a51-0c7b7d1f3e21",
                    "source": "/claims-service",
                    "type": type_,
                    "time": _T,
                    "data": data,
                }
            ]
        }
    )


class MemberUpsertedData(Payload):
    """A member's profile as the members service knows it now."""

    member_id: Id
    name: Name
    email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None


class TaskUpsertedData(Payload):
    """A task that members can claim."""

    task_id: Id
    title: Name


class ClaimSubmittedData(Payload):
    """A member claims to have done a task; the claim waits for a reviewer."""

    claim_id: Id
    task_id: Id
    member_id: Id


class ReviewerData(Payload):
    """Base of the payloads a reviewer sends about a claim."""

    claim_id: Id
    reviewer_id: Id


class ClaimReviewStartedData(ReviewerData):
    """A reviewer takes a submitted claim."""


class ClaimApprovedData(ReviewerData):
    """The assigned reviewer accepts the claim (terminal)."""


class ClaimRejectedData(ReviewerData):
    """The assigned reviewer refuses the claim (terminal)."""

    reason: Text


class ClaimRevisionRequestedData(ReviewerData):
    """The assigned reviewer sends the claim back to its member for changes."""

    note: Text


class ClaimResubmittedData(Payload):
    """The member resubmits a claim after a revision request."""

    claim_id: Id


class ClaimReviewReleasedData(ReviewerData):
    """The assigned reviewer gives the claim back to the queue unreviewed."""


class ClaimTimeoutReleasedData(Payload):
    """Outbound: a review left untouched past the threshold was released by a job."""

    claim_id: Id
    task_id: Id
    reviewer_id: Id
    days_orphaned: Annotated[int, Field(ge=0)]
    timeout_threshold_days: Annotated[int, Field(ge=1)]
    admin_id: Id | None = None
    trigger: Literal["scheduled", "manual", "backfill"]


class MemberUpserted(CloudEvent):
    model_config = _example("member.upserted", {"member_id": "m-1", "name": "Ada Lovelace"})
    key_field = "member_id"
    type: Literal["member.upserted"] = "member.upserted"
    data: MemberUpsertedData


class TaskUpserted(CloudEvent):
    model_config = _example("task.upserted", {"task_id": "t-1", "title": "Translate the guide"})
    key_field = "task_id"
    type: Literal["task.upserted"] = "task.upserted"
    data: TaskUpsertedData


class ClaimSubmitted(CloudEvent):
    model_config = _example(
        "claim.submitted", {"claim_id": "c-1", "task_id": "t-1", "member_id": "m-2"}
    )
    key_field = "claim_id"
    type: Literal["claim.submitted"] = "claim.submitted"
    data: ClaimSubmittedData


class ClaimReviewStarted(CloudEvent):
    model_config = _example("claim.review_started", {"claim_id": "c-1", "reviewer_id": "m-1"})
    key_field = "claim_id"
    type: Literal["claim.review_started"] = "claim.review_started"
    data: ClaimReviewStartedData


class ClaimApproved(CloudEvent):
    model_config = _example("claim.approved", {"claim_id": "c-1", "reviewer_id": "m-1"})
    key_field = "claim_id"
    type: Literal["claim.approved"] = "claim.approved"
    data: ClaimApprovedData


class ClaimRejected(CloudEvent):
    model_config = _example(
        "claim.rejected", {"claim_id": "c-1", "reviewer_id": "m-1", "reason": "no evidence"}
    )
    key_field = "claim_id"
    type: Literal["claim.rejected"] = "claim.rejected"
    data: ClaimRejectedData


class ClaimRevisionRequested(CloudEvent):
    model_config = _example(
        "claim.revision_requested",
        {"claim_id": "c-1", "reviewer_id": "m-1", "note": "add a photo"},
    )
    key_field = "claim_id"
    type: Literal["claim.revision_requested"] = "claim.revision_requested"
    data: ClaimRevisionRequestedData


class ClaimResubmitted(CloudEvent):
    model_config = _example("claim.resubmitted", {"claim_id": "c-1"})
    key_field = "claim_id"
    type: Literal["claim.resubmitted"] = "claim.resubmitted"
    data: ClaimResubmittedData


class ClaimReviewReleased(CloudEvent):
    model_config = _example("claim.review_released", {"claim_id": "c-1", "reviewer_id": "m-1"})
    key_field = "claim_id"
    type: Literal["claim.review_released"] = "claim.review_released"
    data: ClaimReviewReleasedData


class ClaimTimeoutReleased(CloudEvent):
    model_config = _example(
        "claim.timeout_released",
        {
            "claim_id": "c-1",
            "task_id": "t-1",
            "reviewer_id": "m-1",
            "days_orphaned": 9,
            "timeout_threshold_days": 7,
            "admin_id": None,
            "trigger": "scheduled",
        },
    )
    key_field = "claim_id"
    type: Literal["claim.timeout_released"] = "claim.timeout_released"
    data: ClaimTimeoutReleasedData


#: The claim lifecycle events: the input of the claim state machine.
ClaimEvent = (
    ClaimSubmitted
    | ClaimReviewStarted
    | ClaimApproved
    | ClaimRejected
    | ClaimRevisionRequested
    | ClaimResubmitted
    | ClaimReviewReleased
)

#: Everything an upstream service may publish on ``claims.events``.
ClaimsInbound = Annotated[
    MemberUpserted | TaskUpserted | ClaimEvent,
    Field(discriminator="type"),
]

INBOUND = (
    MemberUpserted,
    TaskUpserted,
    ClaimSubmitted,
    ClaimReviewStarted,
    ClaimApproved,
    ClaimRejected,
    ClaimRevisionRequested,
    ClaimResubmitted,
    ClaimReviewReleased,
)
OUTBOUND = (ClaimTimeoutReleased,)
