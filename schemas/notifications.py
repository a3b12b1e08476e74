"""Notifications: what any workflow or the engine asks the notifier to deliver."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from schemas.envelope import CloudEvent, Id, Name, Payload

NOTIFICATIONS_TOPIC = "notifications.out"


class NotificationRequestedData(Payload):
    """Deliver ``template`` rendered with ``data`` to ``recipient`` on ``channel``.

    The envelope ``id`` is the notification id: the notifier delivers each id at most
    once on success.
    """

    channel: Annotated[str, Field(min_length=1, max_length=50)]
    recipient: Id
    template: Name
    data: dict[str, Any] = Field(default_factory=dict)


class NotificationRequested(CloudEvent):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "0b7f3c1e-8f43-4a43-9d7d-3e0d6cf1a001",
                    "source": "jobstream",
                    "type": "notification.requested",
                    "time": "2026-11-01T09:00:00Z",
                    "data": {
                        "channel": "email",
                        "recipient": "m-1",
                        "template": "claim.timeout_released",
                        "data": {"claim_id": "c-1"},
                    },
                }
            ]
        }
    )
    key_field = "recipient"
    type: Literal["notification.requested"] = "notification.requested"
    data: NotificationRequestedData


OUTBOUND = (NotificationRequested,)
