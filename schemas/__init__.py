"""jobstream event contracts: CloudEvents envelopes with strict pydantic payloads.

Importable by producers on their own; depends on pydantic only.
"""

from schemas.claims import CLAIMS_INBOUND_TOPIC, CLAIMS_OUTBOUND_TOPIC, ClaimsInbound
from schemas.envelope import (
    CloudEvent,
    Id,
    Name,
    Payload,
    Text,
    envelope_fields,
    new_event_id,
)
from schemas.registry import ALL_EVENTS, decode, event_type, export_json_schemas, json_schemas

__all__ = [
    "ALL_EVENTS",
    "CLAIMS_INBOUND_TOPIC",
    "CLAIMS_OUTBOUND_TOPIC",
    "ClaimsInbound",
    "CloudEvent",
    "Id",
    "Name",
    "Payload",
    "Text",
    "decode",
    "envelope_fields",
    "event_type",
    "export_json_schemas",
    "json_schemas",
    "new_event_id",
]
