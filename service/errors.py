"""Errors that say what the worker should do with a message.

One root, three verdicts. Only the engine maps them to ack, retry tier or dead
letter; domain code raises them and stays free of any broker or database import.
"""

from __future__ import annotations

from typing import Any


class JobstreamError(Exception):
    """Root of every error jobstream raises on purpose."""


class Retryable(JobstreamError):
    """Transient: try again later through the retry tiers."""


class NonRetryable(JobstreamError):
    """Permanent: the message can never succeed as it is; dead-letter it at once."""


class InvalidTransition(NonRetryable):
    """A domain event that the aggregate's current state does not allow.

    ``event_id`` names the refused event when the raiser knows it (a batch handler
    applying many): the engine then splits the failed batch right at that event.
    """

    def __init__(
        self,
        entity: str,
        entity_id: str,
        state: str | None,
        event_type: str,
        event_id: str | None = None,
    ) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.state = state
        self.event_type = event_type
        self.event_id = event_id
        super().__init__(
            f"{entity} {entity_id} is {state or 'absent'}: {event_type!r} is not allowed from there"
        )

    def headers(self) -> dict[str, Any]:
        return {"x-entity": self.entity, "x-entity-id": self.entity_id, "x-state": self.state or ""}


class ConfigError(JobstreamError):
    """A setting is missing or wrong; the message names the field and the fix."""
