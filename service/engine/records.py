"""Rows the job machinery writes besides job_runs: event-log entries, outbox events, alerts.

Written in the caller's transaction, so a run's state and what it announces commit
together. Ids are derived (uuid5) wherever a retry of the same step must not
announce twice; the outbox's unique event id then drops the repeat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import CloudEvent
from schemas.notifications import (
    NOTIFICATIONS_TOPIC,
    NotificationRequested,
    NotificationRequestedData,
)
from service.config import Settings
from service.db.tables import event_log, outbox

#: Namespace of every id the job machinery derives.
NAMESPACE = uuid.UUID("3d5c8a1e-7b2f-4e61-9c0d-5a4b3c2d1e0f")


def derived_id(*parts: object) -> str:
    """A uuid5 of the parts: the same step always gets the same event id."""
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))


def log_row(
    *,
    entity_type: str,
    entity_id: str,
    event_type: str,
    actor: str | None,
    metadata: dict[str, Any],
    correlation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """An event_log row (``actor`` defaults to the scheduler)."""
    return {
        "occurred_at": occurred_at or datetime.now(UTC),
        "actor": actor or "scheduler",
        "entity_type": entity_type,
        "entity_id": entity_id,
        "event_type": event_type,
        "metadata": metadata,
        "correlation_id": correlation_id,
    }


def outbox_row(
    topic: str, event: CloudEvent, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """``topic`` is the full topic name (prefix included)."""
    return {
        "event_id": event.id,
        "topic": topic,
        "key": event.key,
        "payload": event.model_dump(mode="json", exclude_none=True),
        "headers": headers or {},
    }


def alert(
    settings: Settings, *, event_id: str, template: str, subject: str, data: dict[str, Any]
) -> dict[str, Any]:
    """An outbox row asking the notifier to tell the operators (``alerts_*`` settings)."""
    event = NotificationRequested(
        id=event_id,
        source=settings.source,
        time=datetime.now(UTC),
        subject=subject,
        data=NotificationRequestedData(
            channel=settings.alerts_channel,
            recipient=settings.alerts_recipient,
            template=template,
            data=data,
        ),
    )
    return outbox_row(settings.topic(NOTIFICATIONS_TOPIC), event)


async def write(
    conn: AsyncConnection, logs: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    """Insert event-log rows and outbox rows (an outbox id seen before is skipped)."""
    if logs:
        await conn.execute(event_log.insert(), logs)
    if events:
        await conn.execute(pg_insert(outbox).on_conflict_do_nothing(), events)
