"""Topic names. Retry and dead-letter topics belong to the consuming group."""

from __future__ import annotations

from service.config import Settings


def source(settings: Settings, topic: str) -> str:
    return settings.topic(topic)


def retry(settings: Settings, topic: str, tier: int) -> str:
    return settings.topic(f"{settings.group_id}.{topic}.retry.{tier}")


def dlq(settings: Settings, topic: str) -> str:
    return settings.topic(f"{settings.group_id}.{topic}.dlq")


def unprefixed(settings: Settings, topic: str) -> str:
    p = settings.topic_prefix
    return topic[len(p) :] if p and topic.startswith(p) else topic
