"""The one path every message takes: decode → inbox → transition → log + outbox → commit.

Errors are classified by :mod:`service.engine.retry` and the original bytes are
forwarded, unchanged, to the next retry tier or to the dead-letter topic with
headers that say where they came from and why. The caller commits the Kafka
offset after :meth:`Processor.process` returns.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.registry import decode
from service.config import Settings
from service.engine import topics
from service.engine.retry import (
    DeadLetterDecision,
    ErrorClass,
    RetryDecision,
    classify,
    decide,
)
from service.engine.uow import Cause, UnitOfWork
from service.engine.workflow import Handler
from service.errors import InvalidTransition

log = logging.getLogger("jobstream.processing")

TRACE_LIMIT = 4000
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Incoming:
    """A consumed record, independent of the client library that fetched it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int = 0

    def header(self, name: str) -> str | None:
        raw = self.headers.get(name)
        return raw.decode() if raw is not None else None


class Publisher(Protocol):
    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None: ...


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    RETRIED = "retried"
    DEAD = "dead_lettered"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class Processor:
    """Runs one handler for messages from its source topic and its retry tiers."""

    def __init__(
        self, engine: AsyncEngine, handler: Handler, settings: Settings, publisher: Publisher
    ) -> None:
        self.engine = engine
        self.handler = handler
        self.settings = settings
        self.publisher = publisher
        self.delays = handler.retry_delays_s or tuple(settings.retry_delays_s)

    async def process(self, msg: Incoming) -> Outcome:
        try:
            event = decode(msg.value, self.handler.events)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            return await self._dead_letter(
                msg, ErrorClass.NON_RETRYABLE, exc, message=json.dumps(errors, default=str)
            )
        try:
            async with UnitOfWork(self.engine, self.settings.topic_prefix, self.settings) as uow:
                if not await uow.claim_message(self.handler.name, event.id):
                    return Outcome.DUPLICATE
                uow.cause = Cause(event.id, event.correlationid or event.id, event.source)
                await self.handler.handle(uow, event)
                await uow.commit()
            return Outcome.APPLIED
        except Exception as exc:  # the engine is the one place that maps errors
            return await self.fail(msg, exc)

    async def fail(self, msg: Incoming, exc: BaseException) -> Outcome:
        error_class = classify(exc, self.handler.retryable, self.handler.non_retryable)
        attempt = int(msg.header("x-attempt") or 0) + 1
        decision = decide(attempt, error_class, self.delays, self.settings.retry_jitter)
        if isinstance(decision, RetryDecision):
            return await self._retry(msg, exc, attempt, decision)
        assert isinstance(decision, DeadLetterDecision)
        return await self._dead_letter(msg, decision.error_class, exc, attempt=attempt)

    def _failure_headers(
        self, msg: Incoming, exc: BaseException, error_class: ErrorClass, attempt: int, message: str
    ) -> dict[str, str]:
        now = time.time()
        original = msg.header("x-original-topic")
        headers = {k: v.decode(errors="replace") for k, v in msg.headers.items()}
        if original is None:  # first failure: remember where it came from
            headers.update(
                {
                    "x-original-topic": msg.topic,
                    "x-original-partition": str(msg.partition),
                    "x-original-offset": str(msg.offset),
                    "x-original-timestamp": str(msg.timestamp_ms),
                    "x-first-failed-at": _iso(now),
                }
            )
        trace = "".join(traceback.format_exception(exc))[-TRACE_LIMIT:]
        headers.update(
            {
                "x-consumer-group": self.settings.group_id,
                "x-attempt": str(attempt),
                "x-error-type": type(exc).__name__,
                "x-error-message": message[:MESSAGE_LIMIT],
                "x-error-trace": trace,
                "x-last-failed-at": _iso(now),
                "x-error-class": error_class.value,
            }
        )
        if isinstance(exc, InvalidTransition):
            headers.update(exc.headers())
        return headers

    def _source_topic(self, msg: Incoming) -> str:
        return topics.unprefixed(self.settings, msg.header("x-original-topic") or msg.topic)

    async def _retry(
        self, msg: Incoming, exc: BaseException, attempt: int, decision: RetryDecision
    ) -> Outcome:
        headers = self._failure_headers(msg, exc, ErrorClass.RETRYABLE, attempt, str(exc))
        headers["x-due-at"] = str(time.time() + decision.delay_s)
        topic = topics.retry(self.settings, self._source_topic(msg), decision.tier)
        await self.publisher.send(topic, msg.value, msg.key, _encode(headers))
        log.warning(
            "retrying message",
            extra={"action": "retry", "topic": topic, "attempt": attempt, "error": repr(exc)},
        )
        return Outcome.RETRIED

    async def _dead_letter(
        self,
        msg: Incoming,
        error_class: ErrorClass,
        exc: BaseException,
        *,
        attempt: int | None = None,
        message: str | None = None,
    ) -> Outcome:
        attempt = attempt or int(msg.header("x-attempt") or 0) + 1
        headers = self._failure_headers(msg, exc, error_class, attempt, message or str(exc))
        headers.pop("x-due-at", None)
        topic = topics.dlq(self.settings, self._source_topic(msg))
        await self.publisher.send(topic, msg.value, msg.key, _encode(headers))
        log.error(
            "dead-lettered message",
            extra={"action": "dead_letter", "topic": topic, "error_class": error_class.value},
        )
        return Outcome.DEAD


def _encode(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in headers.items()]
