"""The AsyncAPI document: every topic jobstream consumes and publishes, with its payloads.

Built from the same declarations the worker and relay use (handlers, retry tiers,
dead-letter topics, outbound topics), on a broker that is never started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi import get_asyncapi_html

from schemas.notifications import NOTIFICATIONS_TOPIC, NotificationRequested
from service.engine.worker import handler_topics

if TYPE_CHECKING:
    from service.app import Runtime


def _documented(events: Any) -> Any:
    async def handler(body: Any) -> None:
        """Validated against the contract; invalid ones go to the dead-letter topic."""

    # the real type, not the string that postponed annotations would leave here
    handler.__annotations__ = {"body": events, "return": None}
    return handler


def specification(rt: Runtime) -> AsyncAPI:
    settings = rt.settings
    broker = KafkaBroker(settings.kafka_bootstrap_servers or "kafka:9092")
    for wf in rt.workflows:
        for h in wf.handlers:
            source, *tiers, dlq = handler_topics(settings, h)
            broker.subscriber(
                source,
                title=f"{h.name}: {h.topic}",
                description=f"Consumed by the {wf.name} workflow.",
            )(_documented(h.events))
            broker.subscriber(
                *tiers,
                title=f"{h.name}: retry tiers",
                description="The same bytes, retried after 1, 2, 4, 8, 16 s (configurable).",
            )(_documented(h.events))
            broker.publisher(
                dlq,
                title=f"{h.name}: dead letters",
                description="Original bytes with x-error-* and x-original-* headers.",
                schema=h.events,
            )
        for topic in wf.outbound_topics:
            broker.publisher(
                settings.topic(topic),
                title=f"{wf.name}: {topic}",
                description="Published by the relay from the outbox.",
                schema=wf.outbound_events,
            )
    broker.publisher(
        settings.topic(NOTIFICATIONS_TOPIC),
        title="notifications",
        description="notification.requested events from every workflow and the engine.",
        schema=NotificationRequested,
    )
    return AsyncAPI(
        broker,
        title="jobstream",
        version="0.1.0",
        description="Topics and event contracts of jobstream (CloudEvents 1.0, JSON).",
    )


def html(spec: AsyncAPI) -> str:
    return get_asyncapi_html(spec.to_specification(), try_it_out_path=None)
