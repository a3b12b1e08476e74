"""Forwarding a failed message to its next retry tier or to the dead-letter topic.

The original bytes go, unchanged, into an outbox row of the transaction that made
the decision (parking included), so the forward is committed or rolled back with
it and the relay publishes it. The row id is derived from the message, its origin
and the attempt: a redelivered message that fails again does not forward twice,
and finding that row tells the processing path the failure was decided before.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from service.config import Settings
from service.db.tables import outbox
from service.engine import topics
from service.engine.retry import ErrorClass
from service.engine.uow import UnitOfWork
from service.errors import InvalidTransition

TRACE_LIMIT = 4000
MESSAGE_LIMIT = 2000
FORWARD_NS = uuid.UUID("3a0c8f7e-54d1-4e0b-9b51-7a9e2f3c6d10")
ORIGIN_HEADERS = (
    "x-original-topic",
    "x-original-partition",
    "x-original-offset",
    "x-original-timestamp",
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def pg_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: NUL and lone surrogates become U+FFFD.

    Keys and headers are bytes from anyone's producer; a text or jsonb column
    refuses NUL (and ``\\u0000``) and Python's lone surrogates cannot be encoded,
    so a message carrying one would fail every write about it, its dead letter
    included, and block its partition.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


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
        return pg_text(raw.decode(errors="replace")) if raw is not None else None

    def text_headers(self) -> dict[str, str]:
        """Every header as text that can be stored (see ``pg_text``)."""
        return {pg_text(k): pg_text(v.decode(errors="replace")) for k, v in self.headers.items()}

    @property
    def origin_topic(self) -> str:
        """The source topic, also for a message read from a retry tier."""
        return self.header("x-original-topic") or self.topic

    @property
    def attempt(self) -> int:
        """Attempts made before this delivery (0 for a message from its source topic)."""
        return int(self.header("x-attempt") or 0)

    @property
    def due_at(self) -> float:
        return float(self.header("x-due-at") or 0)

    @property
    def key_text(self) -> str | None:
        return pg_text(self.key.decode(errors="replace")) if self.key else None

    def origin(self) -> str:
        """Where the message first entered jobstream: ``topic/partition/offset``."""
        if self.header("x-original-topic") is not None:
            return "/".join(self.header(h) or "" for h in ORIGIN_HEADERS[:3])
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Failure:
    error_class: ErrorClass
    error: BaseException
    attempt: int
    #: What the operator reads: the validation errors, or ``str(error)``.
    message: str


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def failure_headers(msg: Incoming, failure: Failure, group: str, now: float) -> dict[str, str]:
    """The message's own headers plus where it came from and why it failed (DESIGN.md)."""
    headers = msg.text_headers()
    headers.pop("x-due-at", None)
    headers.pop("x-forward-id", None)
    if "x-original-topic" not in headers:  # first failure: remember where it came from
        headers.update(
            {
                "x-original-topic": msg.topic,
                "x-original-partition": str(msg.partition),
                "x-original-offset": str(msg.offset),
                "x-original-timestamp": str(msg.timestamp_ms),
                "x-first-failed-at": _iso(now),
            }
        )
    error = failure.error
    trace = "".join(traceback.format_exception(error))[-TRACE_LIMIT:]
    headers.update(
        {
            "x-consumer-group": group,
            "x-attempt": str(failure.attempt),
            "x-error-type": type(error).__name__,
            "x-error-message": failure.message[:MESSAGE_LIMIT],
            "x-error-trace": trace,
            "x-last-failed-at": _iso(now),
            "x-error-class": failure.error_class.value,
        }
    )
    if isinstance(error, InvalidTransition):
        headers.update(error.headers())
    return {k: pg_text(str(v)) for k, v in headers.items()}  # error texts may quote the input


def forward_id(consumer: str, msg: Incoming, attempt: int, target: str) -> str:
    replay = msg.header("x-replay-id") or ""
    seed = f"{consumer}|{msg.origin()}|{replay}|{attempt}|{target}"
    return str(uuid.uuid5(FORWARD_NS, seed))


def _target(settings: Settings, msg: Incoming, retry_tier: int | None) -> str:
    source = topics.unprefixed(settings, msg.origin_topic)
    if retry_tier is None:
        return topics.dlq(settings, source)
    return topics.retry(settings, source, retry_tier)


async def forwarded_before(
    uow: UnitOfWork,
    settings: Settings,
    consumer: str,
    msg: Incoming,
    attempt: int,
    retry_tier: int | None,
) -> bool:
    """Did an earlier delivery of ``msg`` already make this very forward?

    Then that failure was decided before: this is a redelivery (a crash before the
    offset commit, a partition consumed again from an old offset) and the message's
    history since (its tiers, the dead letter, the key's parking) is not ours to
    start again.
    """
    fid = forward_id(consumer, msg, attempt, _target(settings, msg, retry_tier))
    found = await uow.conn.execute(sa.select(outbox.c.id).where(outbox.c.event_id == fid))
    return found.first() is not None


def forward(
    uow: UnitOfWork,
    settings: Settings,
    consumer: str,
    msg: Incoming,
    failure: Failure,
    *,
    retry_tier: int | None = None,
    delay_s: float = 0.0,
) -> str:
    """Queue ``msg`` for retry tier ``retry_tier`` (due in ``delay_s``) or, if None, the DLQ."""
    now = time.time()
    headers = failure_headers(msg, failure, settings.group_id, now)
    target = _target(settings, msg, retry_tier)
    if retry_tier is not None:
        headers["x-due-at"] = f"{now + delay_s:.6f}"
    fid = forward_id(consumer, msg, failure.attempt, target)
    uow.forward(target, msg.value, msg.key_text, headers, fid)
    return target
