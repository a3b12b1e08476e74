"""Notifier handler: deliver each notification id at most once on success."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.envelope import CloudEvent
from schemas.notifications import NotificationRequested
from service.engine.uow import UnitOfWork
from service.workflows.notifier.sinks import sink_for
from service.workflows.notifier.tables import deliveries

# Two workers given the same id (a relay republish, a replay) take turns; the
# second then finds the first one's delivery. The lock ends with the transaction.
LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:id, 7))")


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    """Deliver unless this id was delivered before; record the delivery in the same commit."""
    assert isinstance(event, NotificationRequested)
    await uow.conn.execute(LOCK, {"id": event.id})
    done = await uow.conn.scalar(
        sa.select(deliveries.c.notification_id).where(deliveries.c.notification_id == event.id)
    )
    if done is not None:
        return
    sink = sink_for(uow.settings)
    status = await sink.deliver(event, event.to_json())
    d = event.data
    await uow.conn.execute(
        pg_insert(deliveries).values(
            notification_id=event.id,
            channel=d.channel,
            recipient=d.recipient,
            template=d.template,
            sink=sink.name,
            status_code=status,
        )
    )
    uow.record(
        entity_type="notification",
        entity_id=event.id,
        event_type="notification.delivered",
        occurred_at=event.time,
        metadata={
            "sink": sink.name,
            "status": status,
            "channel": d.channel,
            "recipient": d.recipient,
            "template": d.template,
        },
    )
