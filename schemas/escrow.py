"""Escrow events: donations held in escrow, matches, obligation cycles, leaderboard boosts.

Money is ``Decimal`` (two places), never float; outbound events carry amounts as
JSON strings so that no consumer parses them as binary floating point.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from schemas.envelope import CloudEvent, Id, Payload

ESCROW_INBOUND_TOPIC = "escrow.events"
ESCROW_OUTBOUND_TOPIC = "escrow.out"

_T = "2026-11-01T09:00:00Z"

Money = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Balance = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Multiplier = Annotated[Decimal, Field(ge=1, le=10, max_digits=4, decimal_places=2)]
TrustScore = Annotated[Decimal, Field(ge=0, le=1, max_digits=3, decimal_places=2)]


def _example(type_: str, data: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "7d0c55a2-41a3-4d0e-8f7e-2b1f6f4c9e10",
                    "source": "/escrow-service",
                    "type": type_,
                    "time": _T,
                    "data": data,
                }
            ]
        }
    )


class DonationConfirmedData(Payload):
    """A donor's payment cleared: ``amount`` is held in escrow for the recipient for 48 h.

    ``cycle_id`` names the recipient's obligation cycle that this donation funds; it
    becomes ``obligated`` when the escrow is released.
    """

    escrow_id: Id
    donor_id: Id
    recipient_id: Id
    amount: Money
    cycle_id: Id | None = None

    @model_validator(mode="after")
    def _not_to_self(self) -> Self:
        if self.donor_id == self.recipient_id:
            raise ValueError(f"donor_id and recipient_id are both {self.donor_id!r}")
        return self


class MatchCreatedData(Payload):
    """A donor was matched with a recipient; the match expires 24 h later unless accepted."""

    match_id: Id
    donor_id: Id
    recipient_id: Id


class MatchAcceptedData(Payload):
    """The recipient accepted a pending match (before it expired, by event time)."""

    match_id: Id


class CycleCreatedData(Payload):
    """An obligation: ``user_id`` owes ``amount`` onward by ``due_date``."""

    cycle_id: Id
    user_id: Id
    amount: Money
    due_date: date


class CycleFulfilledData(Payload):
    """The user met the obligation of a cycle."""

    cycle_id: Id


class BoostGrantedData(Payload):
    """A leaderboard multiplier for ``user_id`` until ``expires_at`` (the largest applies)."""

    boost_id: Id
    user_id: Id
    multiplier: Multiplier
    expires_at: AwareDatetime


class EscrowReleasedData(Payload):
    """Outbound: the hold passed; the amount moved from receivable to fiat balance."""

    escrow_id: Id
    donor_id: Id
    recipient_id: Id
    amount: Money
    cycle_id: Id | None = None
    charity_coins: Annotated[int, Field(ge=0)]


class MatchExpiredData(Payload):
    """Outbound: a match was not accepted within 24 h."""

    match_id: Id
    donor_id: Id
    recipient_id: Id
    expires_at: AwareDatetime


class CycleObligatedData(Payload):
    """Outbound: the donation funding a cycle was released; the obligation now runs."""

    cycle_id: Id
    user_id: Id
    escrow_id: Id
    due_date: date


class CycleDefaultedData(Payload):
    """Outbound: an obligated cycle passed its due date; the user's trust score dropped."""

    cycle_id: Id
    user_id: Id
    amount: Money
    due_date: date
    trust_score: TrustScore


class BoostExpiredData(Payload):
    """Outbound: a boost reached its expiry and no longer counts."""

    boost_id: Id
    user_id: Id
    multiplier: Multiplier
    expires_at: AwareDatetime


class LeaderboardEntryUpdatedData(Payload):
    """Outbound: a user's leaderboard entry changed (score, rank or their inputs)."""

    user_id: Id
    rank: Annotated[int, Field(ge=1)]
    previous_rank: Annotated[int, Field(ge=1)] | None = None
    score: Balance
    completed_cycles: Annotated[int, Field(ge=0)]
    average_completion_days: Annotated[Decimal, Field(max_digits=10, decimal_places=2)] | None
    multiplier: Multiplier


_DONATION = {
    "escrow_id": "e-1",
    "donor_id": "u-1",
    "recipient_id": "u-2",
    "amount": "25.00",
    "cycle_id": "cy-1",
}
_MATCH = {"match_id": "ma-1", "donor_id": "u-1", "recipient_id": "u-2"}
_CYCLE = {"cycle_id": "cy-1", "user_id": "u-2", "due_date": "2026-12-01"}
_BOOST = {
    "boost_id": "b-1",
    "user_id": "u-2",
    "multiplier": "1.50",
    "expires_at": "2026-11-08T09:00:00Z",
}


class DonationConfirmed(CloudEvent):
    model_config = _example("donation.confirmed", _DONATION)
    key_field = "escrow_id"
    type: Literal["donation.confirmed"] = "donation.confirmed"
    data: DonationConfirmedData


class MatchCreated(CloudEvent):
    model_config = _example("match.created", _MATCH)
    key_field = "match_id"
    type: Literal["match.created"] = "match.created"
    data: MatchCreatedData


class MatchAccepted(CloudEvent):
    model_config = _example("match.accepted", {"match_id": "ma-1"})
    key_field = "match_id"
    type: Literal["match.accepted"] = "match.accepted"
    data: MatchAcceptedData


class CycleCreated(CloudEvent):
    model_config = _example("cycle.created", _CYCLE | {"amount": "25.00"})
    key_field = "cycle_id"
    type: Literal["cycle.created"] = "cycle.created"
    data: CycleCreatedData


class CycleFulfilled(CloudEvent):
    model_config = _example("cycle.fulfilled", {"cycle_id": "cy-1"})
    key_field = "cycle_id"
    type: Literal["cycle.fulfilled"] = "cycle.fulfilled"
    data: CycleFulfilledData


class BoostGranted(CloudEvent):
    model_config = _example("boost.granted", _BOOST)
    key_field = "boost_id"
    type: Literal["boost.granted"] = "boost.granted"
    data: BoostGrantedData


class EscrowReleased(CloudEvent):
    model_config = _example("escrow.released", _DONATION | {"charity_coins": 50})
    key_field = "escrow_id"
    type: Literal["escrow.released"] = "escrow.released"
    data: EscrowReleasedData


class MatchExpired(CloudEvent):
    model_config = _example("match.expired", _MATCH | {"expires_at": "2026-11-02T09:00:00Z"})
    key_field = "match_id"
    type: Literal["match.expired"] = "match.expired"
    data: MatchExpiredData


class CycleObligated(CloudEvent):
    model_config = _example("cycle.obligated", _CYCLE | {"escrow_id": "e-1"})
    key_field = "cycle_id"
    type: Literal["cycle.obligated"] = "cycle.obligated"
    data: CycleObligatedData


class CycleDefaulted(CloudEvent):
    model_config = _example("cycle.defaulted", _CYCLE | {"amount": "25.00", "trust_score": "0.90"})
    key_field = "cycle_id"
    type: Literal["cycle.defaulted"] = "cycle.defaulted"
    data: CycleDefaultedData


class BoostExpired(CloudEvent):
    model_config = _example("boost.expired", _BOOST)
    key_field = "boost_id"
    type: Literal["boost.expired"] = "boost.expired"
    data: BoostExpiredData


class LeaderboardEntryUpdated(CloudEvent):
    model_config = _example(
        "leaderboard.entry_updated",
        {
            "user_id": "u-2",
            "rank": 1,
            "previous_rank": 3,
            "score": "54.00",
            "completed_cycles": 3,
            "average_completion_days": "12.00",
            "multiplier": "1.00",
        },
    )
    key_field = "user_id"
    type: Literal["leaderboard.entry_updated"] = "leaderboard.entry_updated"
    data: LeaderboardEntryUpdatedData


#: Everything an upstream service may publish on ``escrow.events``.
EscrowInbound = Annotated[
    DonationConfirmed | MatchCreated | MatchAccepted | CycleCreated | CycleFulfilled | BoostGranted,
    Field(discriminator="type"),
]

INBOUND = (
    DonationConfirmed,
    MatchCreated,
    MatchAccepted,
    CycleCreated,
    CycleFulfilled,
    BoostGranted,
)
OUTBOUND = (
    EscrowReleased,
    MatchExpired,
    CycleObligated,
    CycleDefaulted,
    BoostExpired,
    LeaderboardEntryUpdated,
)
