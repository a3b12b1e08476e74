"""The worker: a FastStream Kafka broker with one subscriber per handler and retry tier."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine import topics
from service.engine.kafka import KafkaPublisher, ensure_topics, faststream_security
from service.engine.processing import Incoming, Outcome, Processor
from service.engine.workflow import Handler, Workflow

log = logging.getLogger("jobstream.worker")


def incoming(message: KafkaMessage) -> Incoming:
    record = message.raw_message
    return Incoming(
        topic=record.topic,  # type: ignore[union-attr]
        partition=record.partition,  # type: ignore[union-attr]
        offset=record.offset,  # type: ignore[union-attr]
        key=record.key,  # type: ignore[union-attr]
        value=record.value or b"",  # type: ignore[union-attr]
        headers={k: v for k, v in record.headers or ()},  # type: ignore[union-attr]
        timestamp_ms=record.timestamp,  # type: ignore[union-attr]
    )


async def raw_body(message: KafkaMessage) -> bytes:
    """Hand the handler the exact bytes: validation is the processing path's job."""
    return message.body


def handler_topics(settings: Settings, handler: Handler) -> list[str]:
    """The source topic, every retry tier and the dead-letter topic of one handler."""
    delays = handler.retry_delays_s or settings.retry_delays_s
    return [
        topics.source(settings, handler.topic),
        *(topics.retry(settings, handler.topic, n) for n in range(1, len(delays) + 1)),
        topics.dlq(settings, handler.topic),
    ]


class Worker:
    """Consumes every handler's topic and retry tiers; commits offsets after the DB."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, workflows: Iterable[Workflow]
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.handlers = [h for wf in workflows for h in wf.handlers]
        self.publisher = KafkaPublisher(settings)
        self.broker = KafkaBroker(
            settings.require_kafka(),
            enable_idempotence=settings.kafka_idempotent_producer,
            acks="all",
            logger=logging.getLogger("jobstream.faststream"),
            security=faststream_security(settings),
        )
        self.processors: dict[str, Processor] = {}
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        for handler in self.handlers:
            self._subscribe(handler)

    def _consumer_options(self) -> dict[str, object]:
        return {
            "group_id": self.settings.group_id,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": self.settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.settings.kafka_heartbeat_interval_ms,
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "decoder": raw_body,
        }

    def _subscribe(self, handler: Handler) -> None:
        processor = Processor(self.engine, handler, self.settings, self.publisher)
        self.processors[handler.name] = processor

        async def consume(body: bytes, message: KafkaMessage) -> None:
            outcome = await processor.process(incoming(message))
            self.outcomes[outcome] += 1

        async def consume_retry(body: bytes, message: KafkaMessage) -> None:
            msg = incoming(message)
            due = float(msg.header("x-due-at") or 0)
            wait = due - time.time()
            if wait > 0:  # never early; the tier's delay is fixed so its head is due first
                await asyncio.sleep(wait)
            outcome = await processor.process(msg)
            self.outcomes[outcome] += 1

        source, *tiers, _dlq = handler_topics(self.settings, handler)
        opts = self._consumer_options()
        self.broker.subscriber(source, title=f"{handler.name}:{handler.topic}", **opts)(consume)  # type: ignore[call-overload]
        for tier in tiers:
            self.broker.subscriber(tier, title=f"{handler.name}:{tier}", **opts)(consume_retry)  # type: ignore[call-overload]

    def all_topics(self) -> list[str]:
        return [t for h in self.handlers for t in handler_topics(self.settings, h)]

    async def start(self) -> None:
        await ensure_topics(self.settings, self.all_topics())
        await self.publisher.start()
        await self.broker.start()
        log.info("worker started", extra={"action": "worker_start", "handlers": len(self.handlers)})

    async def stop(self) -> None:
        await self.broker.stop()
        await self.publisher.stop()
