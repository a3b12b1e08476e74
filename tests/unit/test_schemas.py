"""Event contracts: examples, strictness, UTC time, decoding and JSON Schema export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import ALL_EVENTS, CloudEvent, decode, export_json_schemas, json_schemas
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
    "job.tick",
    "job.retry_requested",
}


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
    assert (CLAIMS_INBOUND_TOPIC, CLAIMS_OUTBOUND_TOPIC) == ("claims.events", "claims.out")


@pytest.mark.parametrize("type_", sorted(EXPECTED_TYPES))
def test_each_example_validates_and_round_trips(type_: str) -> None:
    cls = ALL_EVENTS[type_]
    raw = example(cls)
    assert raw["type"] == type_
    event = cls.model_validate(raw)
    assert cls.model_validate_json(event.to_json()) == event
    assert event.key == raw["data"][cls.key_field]


@pytest.mark.parametrize("inbound", INBOUND, ids=lambda cls: cls.__name__)
def test_inbound_examples_decode_through_the_union(inbound: type[CloudEvent]) -> None:
    raw = json.dumps(example(inbound)).encode()
    assert type(decode(raw, ClaimsInbound)) is inbound


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
