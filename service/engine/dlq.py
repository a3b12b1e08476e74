"""Dead letters: the index of the dead-letter topics, and reading it.

The DLQ topics are the record; ``dead_letters`` indexes them (one row per
dead-lettering, keyed by the forward id the worker stamped, so a republished copy
is not indexed twice). What operators do with them is in ``dlq_actions``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.db.tables import dead_letters
from service.engine.failures import Incoming, pg_text

STATUSES = ("pending", "replayed", "discarded")


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _peek(value: bytes) -> tuple[str | None, str | None]:
    """The CloudEvent id and type, if the bytes are a JSON object that has them."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    return (
        pg_text(str(doc["id"])[:200]) if "id" in doc else None,
        pg_text(str(doc["type"])[:200]) if "type" in doc else None,
    )


async def index(engine: AsyncEngine, record: Incoming) -> bool:
    """Index one DLQ record; False if it was indexed before."""
    h = record.header
    message_id, event_type = _peek(record.value)
    original_ts = _int(h("x-original-timestamp"))
    replay_of = _int(h("x-replay-of"))
    values: dict[str, Any] = {
        "forward_id": h("x-forward-id") or f"{record.topic}/{record.partition}/{record.offset}",
        "dlq_topic": record.topic,
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
        "consumer_group": h("x-consumer-group"),
        "original_topic": record.origin_topic,
        "original_partition": _int(h("x-original-partition")),
        "original_offset": _int(h("x-original-offset")),
        "original_timestamp": datetime.fromtimestamp(original_ts / 1000, UTC)
        if original_ts
        else None,
        "message_key": record.key_text,
        "message_id": message_id,
        "event_type": event_type,
        "payload": record.value,
        "headers": record.text_headers(),
        "error_class": h("x-error-class") or "unknown",
        "error_type": h("x-error-type"),
        "error_message": h("x-error-message"),
        "attempts": _int(h("x-attempt")) or 1,
        "first_failed_at": _ts(h("x-first-failed-at")),
        "last_failed_at": _ts(h("x-last-failed-at")),
        # a link to a row that is gone (purged) is dropped rather than refused
        "replay_of": sa.select(dead_letters.c.id)
        .where(dead_letters.c.id == replay_of)
        .scalar_subquery()
        if replay_of
        else None,
    }
    async with engine.begin() as conn:
        result = await conn.execute(
            pg_insert(dead_letters)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(dead_letters.c.id)
        )
        return result.first() is not None


@dataclass(frozen=True)
class Filter:
    """Which dead letters an operation applies to; empty fields match everything."""

    ids: tuple[int, ...] = ()
    topic: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    status: str | None = "pending"
    limit: int = 1000
    offset: int = 0

    def where(self, settings: Settings) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        if self.ids:
            clauses.append(dead_letters.c.id.in_(self.ids))
        if self.topic:
            clauses.append(
                dead_letters.c.original_topic.in_({self.topic, settings.topic(self.topic)})
            )
        if self.error_class:
            clauses.append(dead_letters.c.error_class == self.error_class)
        if self.since:
            clauses.append(dead_letters.c.created_at >= self.since)
        if self.status:
            clauses.append(dead_letters.c.status == self.status)
        return clauses


SUMMARY = (
    dead_letters.c.id,
    dead_letters.c.created_at,
    dead_letters.c.original_topic,
    dead_letters.c.event_type,
    dead_letters.c.message_key,
    dead_letters.c.error_class,
    dead_letters.c.error_type,
    dead_letters.c.error_message,
    dead_letters.c.attempts,
    dead_letters.c.status,
    dead_letters.c.replay_count,
    dead_letters.c.replay_of,
)


async def find(
    conn: AsyncConnection, settings: Settings, flt: Filter
) -> tuple[int, list[dict[str, Any]]]:
    """Count and list (newest first) the dead letters matching ``flt``."""
    where = flt.where(settings)
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(*where))
    ).scalar_one()
    rows = await conn.execute(
        sa.select(*SUMMARY)
        .where(*where)
        .order_by(dead_letters.c.id.desc())
        .limit(flt.limit)
        .offset(flt.offset)
    )
    return int(total), [dict(r._mapping) for r in rows]


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """Pending dead letters per error class."""
    rows = await conn.execute(
        sa.select(dead_letters.c.error_class, sa.func.count())
        .where(dead_letters.c.status == "pending")
        .group_by(dead_letters.c.error_class)
    )
    return {r[0]: int(r[1]) for r in rows}


async def get(conn: AsyncConnection, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter with its headers, decoded payload and error details."""
    row = (
        await conn.execute(sa.select(dead_letters).where(dead_letters.c.id == dead_letter_id))
    ).first()
    if row is None:
        return None
    item = dict(row._mapping)
    raw: bytes = bytes(item.pop("payload"))
    try:
        item["payload"] = json.loads(raw)
    except ValueError:
        item["payload"] = None
    item["payload_text"] = raw.decode(errors="replace")
    try:
        item["validation_errors"] = (
            json.loads(item["error_message"] or "")
            if item["error_class"] == "non_retryable"
            else None
        )
    except ValueError:
        item["validation_errors"] = None
    item["traceback"] = item["headers"].get("x-error-trace")
    return item
