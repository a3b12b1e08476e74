"""Event contracts: examples, strictness, UTC time, decoding and JSON Schema export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    ALL_EVENTS,
    CloudEvent,
    audit,
    challenges,
    decode,
    escrow,
    export_json_schemas,
    json_schemas,
    usage,
)
from schemas import litigation as lit
from schemas.claims import (
    CLAIMS_INBOUND_TOPIC,
    CLAIMS_OUTBOUND_TOPIC,
    INBOUND,
    OUTBOUND,
    ClaimApproved,
    ClaimsInbound,
    ClaimSubmitted,
)

EXPECTED_TYPES = {
    "member.upserted",
    "task.upserted",
    "claim.submitted",
    "claim.review_started",
    "claim.approved",
    "claim.rejected",
    "claim.revision_requested",
    "claim.resubmitted",
    "claim.review_released",
    "claim.timeout_released",
    "notification.requested",
    "donation.confirmed",
    "match.created",
    "match.accepted",
    "cycle.created",
    "cycle.fulfilled",
    "boost.granted",
    "escrow.released",
    "match.expired",
    "cycle.obligated",
    "cycle.defaulted",
    "boost.expired",
    "leaderboard.entry_updated",
    "user.upserted",
    "challenge.created",
    "challenge.member_joined",
    "challenge.progress_recorded",
    "notification.created",
    "challenge.completed",
    "challenge.failed",
    "challenge.stats_updated",
    "notification.purged",
    "litigation.tenant.upserted",
    "litigation.case.opened",
    "litigation.case.closed",
    "litigation.task.created",
    "litigation.task.reassigned",
    "litigation.task.completed",
    "litigation.hearing.scheduled",
    "litigation.hearing.cancelled",
    "litigation.deadline.set",
    "litigation.deadline.met",
    "litigation.task.sla_breached",
    "litigation.task.overdue",
    "litigation.snapshot.taken",
    "usage.recorded",
    "usage.limit.configured",
    "usage.feature_flag.set",
    "usage.api_key.set",
    "usage.limit.exceeded",
    "usage.period.closed",
    "audit.recorded",
    "job.tick",
    "job.retry_requested",
}
#: (discriminated union of a topic, an event type it must accept)
#: (union of an inbound topic, an event type it carries), for every inbound topic.
TOPIC_EVENTS: list[tuple[Any, type[CloudEvent]]] = [
    *((ClaimsInbound, cls) for cls in INBOUND),
    *((escrow.EscrowInbound, cls) for cls in escrow.INBOUND),
    *((challenges.ChallengesInbound, cls) for cls in challenges.INBOUND),
    *((lit.LitigationInbound, cls) for cls in lit.INBOUND),
    *((usage.UsageInbound, cls) for cls in usage.INBOUND),
    *((audit.AuditRecorded, cls) for cls in audit.INBOUND),
]


def example(cls: type[CloudEvent]) -> dict[str, Any]:
    extra = cls.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    examples = extra["examples"]
    assert isinstance(examples, list)
    assert len(examples) == 1
    first = examples[0]
    assert isinstance(first, dict)
    return dict(first)


def submitted(**changes: Any) -> dict[str, Any]:
    return example(ClaimSubmitted) | changes


def test_catalogue_lists_every_event_once() -> None:
    assert set(ALL_EVENTS) == EXPECTED_TYPES
    assert {*INBOUND, *OUTBOUND} <= set(ALL_EVENTS.values())
    assert {*escrow.INBOUND, *escrow.OUTBOUND} <= set(ALL_EVENTS.values())
    assert {*challenges.INBOUND, *challenges.OUTBOUND} <= set(ALL_EVENTS.values())
    assert (CLAIMS_INBOUND_TOPIC, CLAIMS_OUTBOUND_TOPIC) == ("claims.events", "claims.out")
    assert (escrow.ESCROW_INBOUND_TOPIC, escrow.ESCROW_OUTBOUND_TOPIC) == (
        "escrow.events",
        "escrow.out",
    )
    assert (challenges.CHALLENGES_INBOUND_TOPIC, challenges.CHALLENGES_OUTBOUND_TOPIC) == (
        "challenges.events",
        "challenges.out",
    )
    for module in (lit, usage, audit):
        assert {*module.INBOUND, *module.OUTBOUND} <= set(ALL_EVENTS.values())
    assert (CLAIMS_INBOUND_TOPIC, CLAIMS_OUTBOUND_TOPIC) == ("claims.events", "claims.out")
    assert lit.LITIGATION_INBOUND_TOPIC == "litigation.events"
    assert usage.USAGE_INBOUND_TOPIC == "usage.events"
    assert audit.AUDIT_INBOUND_TOPIC == "audit.events"


@pytest.mark.parametrize("type_", sorted(EXPECTED_TYPES))
def test_each_example_validates_and_round_trips(type_: str) -> None:
    cls = ALL_EVENTS[type_]
    raw = example(cls)
    assert raw["type"] == type_
    event = cls.model_validate(raw)
    assert cls.model_validate_json(event.to_json()) == event
    assert event.key == raw["data"][cls.key_field]


@pytest.mark.parametrize(
    ("union", "inbound"), TOPIC_EVENTS, ids=[cls.__name__ for _, cls in TOPIC_EVENTS]
)
def test_inbound_examples_decode_through_the_union(union: Any, inbound: type[CloudEvent]) -> None:
    raw = json.dumps(example(inbound)).encode()
    assert type(decode(raw, union)) is inbound


@pytest.mark.parametrize(
    ("cls", "changes", "problem"),
    [
        (escrow.DonationConfirmed, {"amount": "10.001"}, "decimal places"),
        (escrow.DonationConfirmed, {"amount": 0}, "greater than 0"),
        (escrow.DonationConfirmed, {"amount": "NaN"}, "amount"),
        (escrow.DonationConfirmed, {"recipient_id": "u-1"}, "both 'u-1'"),
        (escrow.BoostGranted, {"multiplier": "0.5"}, "greater than or equal to 1"),
        (escrow.BoostGranted, {"expires_at": "2026-11-08T09:00:00"}, "timezone"),
        (challenges.UserUpserted, {"timezone": "Mars/Olympus_Mons"}, "not an IANA timezone"),
        (challenges.UserUpserted, {"timezone": "../etc/passwd"}, "timezone"),
        (challenges.ChallengeCreated, {"ends_at": "2026-11-01T00:00:00Z"}, "must be after"),
        (challenges.ChallengeProgressRecorded, {"completion_rate": "1.01"}, "less than or equal"),
    ],
)
def test_workflow_payloads_reject_bad_values(
    cls: type[CloudEvent], changes: dict[str, Any], problem: str
) -> None:
    raw = example(cls)
    with pytest.raises(ValidationError, match=problem):
        cls.model_validate(raw | {"data": raw["data"] | changes})


def test_money_is_decimal_and_leaves_as_a_string() -> None:
    donation = escrow.DonationConfirmed.model_validate(example(escrow.DonationConfirmed))
    assert donation.data.amount == Decimal("25.00")
    assert json.loads(donation.to_json())["data"]["amount"] == "25.00"


def test_a_tenant_timezone_must_be_an_iana_name() -> None:
    raw = example(lit.TenantUpserted)
    with pytest.raises(ValidationError, match="IANA"):
        lit.TenantUpserted.model_validate(raw | {"data": raw["data"] | {"timezone": "CEST"}})
    ok = lit.TenantUpserted.model_validate(raw | {"data": raw["data"] | {"timezone": "Asia/Tokyo"}})
    assert ok.data.timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("field", "value"),
    [("warning_pct", 0), ("warning_pct", 101), ("limit", 0), ("period", "weekly")],
)
def test_limit_configuration_is_bounded(field: str, value: object) -> None:
    raw = example(usage.LimitConfigured)
    with pytest.raises(ValidationError, match=field):
        usage.LimitConfigured.model_validate(raw | {"data": raw["data"] | {field: value}})


def test_usage_on_the_audit_topic_is_rejected() -> None:
    raw = json.dumps(example(usage.UsageRecorded)).encode()
    with pytest.raises(ValidationError):
        decode(raw, audit.AuditRecorded)


def test_extra_envelope_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ClaimSubmitted.model_validate(submitted(priority="high"))


def test_extra_payload_field_is_rejected() -> None:
    data = example(ClaimSubmitted)["data"] | {"score": 5}
    with pytest.raises(ValidationError, match="extra"):
        ClaimSubmitted.model_validate(submitted(data=data))


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        ClaimSubmitted.model_validate(submitted(time="2026-11-01T09:00:00"))
    with pytest.raises(ValidationError):
        ClaimSubmitted.model_validate(submitted(time=datetime(2026, 11, 1, 9)))


def test_time_is_normalized_to_utc() -> None:
    event = ClaimSubmitted.model_validate(submitted(time="2026-11-01T11:00:00+02:00"))
    assert event.time == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert event.time.utcoffset() is not None
    assert event.time.tzinfo is UTC


@pytest.mark.parametrize(
    "time",
    [
        "9999-12-31T23:59:59-05:00",  # past datetime's range once in UTC: used to raise
        "0001-01-01T00:00:00+05:00",  # OverflowError, which redelivered its batch forever
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1899-12-31T23:59:59Z",
        "9000-01-01T00:00:00Z",
    ],
)
def test_out_of_range_times_are_validation_errors(time: str) -> None:
    raw = json.dumps(submitted(time=time)).encode()
    with pytest.raises(ValidationError, match="time"):
        decode(raw, ClaimsInbound)


@pytest.mark.parametrize(
    "change",
    [
        {"id": "a\x00b"},
        {"source": "\x00"},
        {"data": {"claim_id": "c\x00", "task_id": "t-1", "member_id": "m-1"}},
        {"data": {"claim_id": "c-1", "task_id": "t-1", "member_id": "m-1", "\x00": 1}},
    ],
)
def test_a_nul_anywhere_in_an_event_is_a_validation_error(change: dict[str, Any]) -> None:
    raw = json.dumps(submitted(**change)).encode()  # as JSON writes it: \u0000
    with pytest.raises(ValidationError, match="NUL"):
        decode(raw, ClaimsInbound)


def test_bounded_strings_are_enforced() -> None:
    data = example(ClaimSubmitted)["data"] | {"claim_id": "x" * 129}
    with pytest.raises(ValidationError, match="claim_id"):
        ClaimSubmitted.model_validate(submitted(data=data))
    with pytest.raises(ValidationError):
        ClaimSubmitted.model_validate(
            submitted(data=example(ClaimSubmitted)["data"] | {"task_id": ""})
        )


def test_decode_rejects_unknown_type() -> None:
    raw = json.dumps(submitted(type="claim.teleported")).encode()
    with pytest.raises(ValidationError, match=r"claim\.teleported"):
        decode(raw, ClaimsInbound)


def test_decode_rejects_outbound_type_on_the_inbound_topic() -> None:
    raw = json.dumps(example(ALL_EVENTS["claim.timeout_released"])).encode()
    with pytest.raises(ValidationError):
        decode(raw, ClaimsInbound)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"type": "claim.approved"}'])
def test_decode_rejects_malformed_messages(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode(raw, ClaimsInbound)


def test_decode_validates_the_payload_by_type() -> None:
    approved = example(ClaimApproved)
    raw = json.dumps(approved | {"data": {"claim_id": "c-1"}}).encode()
    with pytest.raises(ValidationError, match="reviewer_id"):
        decode(raw, ClaimsInbound)


def test_json_schemas_carry_examples_and_forbid_extras() -> None:
    schemas = json_schemas()
    assert set(schemas) == EXPECTED_TYPES
    for schema in schemas.values():
        assert schema["examples"]
        assert schema["additionalProperties"] is False


def test_export_writes_one_file_per_event_and_an_index(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path / "out")
    names = {path.name for path in paths}
    assert names == {f"{type_}.json" for type_ in EXPECTED_TYPES} | {"index.json"}
    assert {path.name for path in (tmp_path / "out").iterdir()} == names
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert set(index["events"]) == EXPECTED_TYPES
    schema = json.loads((tmp_path / "out" / "claim.submitted.json").read_text())
    assert schema["properties"]["type"]["const"] == "claim.submitted"
