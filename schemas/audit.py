"""Audit events: who did what to which target, kept once per event id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from schemas.envelope import CloudEvent, Id, Name, Payload, Text

AUDIT_INBOUND_TOPIC = "audit.events"


class AuditRecordedData(Payload):
    """One audited action within an organization."""

    organization_id: Id
    actor: Id
    action: Name
    target_type: Annotated[str, Field(min_length=1, max_length=100)]
    target_id: Id
    reason: Text | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class AuditRecorded(CloudEvent):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "2c9d7e4b-1a6f-4d3e-8b5c-0f9e8d7c6b5a",
                    "source": "/admin-console",
                    "type": "audit.recorded",
                    "time": "2026-11-02T14:00:00Z",
                    "data": {
                        "organization_id": "org-1",
                        "actor": "user-42",
                        "action": "api_key.rotated",
                        "target_type": "api_key",
                        "target_id": "key-9",
                        "reason": "scheduled rotation",
                        "details": {"ip": "203.0.113.7"},
                    },
                }
            ]
        }
    )
    key_field = "organization_id"
    type: Literal["audit.recorded"] = "audit.recorded"
    data: AuditRecordedData


#: ``audit.events`` carries this one type, so the class itself is the topic's union.
INBOUND = (AuditRecorded,)
OUTBOUND = ()
