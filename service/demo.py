"""Demo data for `jobstream dev --demo`: each workflow's demo events, sent through the broker."""

from __future__ import annotations

from datetime import UTC, datetime

from service.config import Settings
from service.engine.kafka import KafkaPublisher
from service.workflows import installed_workflows


async def publish_demo(settings: Settings, now: datetime | None = None) -> int:
    """Publish every installed workflow's demo events; ids are stable, so reruns dedupe."""
    now = now or datetime.now(UTC)
    events = [item for wf in installed_workflows() for item in wf.demo_events(now)]
    publisher = KafkaPublisher(settings)
    await publisher.start()
    try:
        await publisher.send_many(
            (settings.topic(topic), e.to_json(), e.key.encode(), []) for topic, e in events
        )
    finally:
        await publisher.stop()
    return len(events)
