"""Thin aiokafka adapters: a producer for exact bytes and headers, and topic creation."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from service.config import Settings
from service.errors import ConfigError

log = logging.getLogger("jobstream.kafka")


def producer_options(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.require_kafka(),
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotent_producer,
        "linger_ms": 2,
        **settings.kafka_client_options(),
    }


def faststream_security(settings: Settings) -> BaseSecurity | None:
    """The same security settings, in the shape FastStream's broker takes."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol.endswith("SSL")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ssl.create_default_context())
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    user = settings.kafka_sasl_username or ""
    mechanism = (settings.kafka_sasl_mechanism or "PLAIN").upper()
    cls = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    if mechanism not in cls:
        raise ConfigError(
            f"kafka_sasl_mechanism (JOBSTREAM_KAFKA_SASL_MECHANISM) {mechanism!r} is not "
            "supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
        )
    return cls[mechanism](user, password, use_ssl=use_ssl)


class KafkaPublisher:
    """Publishes raw bytes with headers; ``send`` waits for the broker's ack."""

    def __init__(self, settings: Settings) -> None:
        self._options = producer_options(settings)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self._options)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "call start() first"
        return self._producer

    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        await self.producer.send_and_wait(topic, value, key=key, headers=headers)

    async def send_many(
        self, messages: Iterable[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]]
    ) -> None:
        """Send in order without waiting for each ack, then wait for all of them."""
        futures = [
            await self.producer.send(topic, value, key=key, headers=headers)
            for topic, value, key, headers in messages
        ]
        await asyncio.gather(*futures)


async def ensure_topics(settings: Settings, names: Iterable[str]) -> None:
    """Create topics with the configured partition count; existing ones are left alone."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.require_kafka(), **settings.kafka_client_options()
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.kafka_partitions,
                replication_factor=settings.kafka_replication_factor,
            )
            for name in sorted(set(names) - existing)
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics", extra={"action": "create_topics", "topics": len(wanted)})
    finally:
        await admin.close()
