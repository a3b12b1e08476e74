"""Per-key order across retries: later messages with a key wait behind its retried head.

While the head (a message of key K waiting in a retry tier) is away, every later
message with key K is stored here instead of being applied. When the head succeeds
or is dead-lettered, the parked messages are applied in order in the same
transaction. Row locks make this safe against the source consumer parking a new
message while a retry-tier consumer drains the key: parking takes ``FOR SHARE``
on the key's row, draining ``FOR UPDATE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables import parked_keys, parked_messages
from service.engine.failures import Incoming

#: (source topic, key)
ParkKey = tuple[str, str]


@dataclass(frozen=True)
class Parked:
    id: int
    message: Incoming
    message_id: str


async def heads(
    conn: AsyncConnection, consumer: str, keys: Iterable[ParkKey], *, exclusive: bool = False
) -> dict[ParkKey, str]:
    """The head message id of each of ``keys`` that is parked, locking those rows."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    by_topic: dict[str, list[str]] = {}
    for topic, key in wanted:
        by_topic.setdefault(topic, []).append(key)
    found: dict[ParkKey, str] = {}
    for topic, names in by_topic.items():
        stmt = sa.select(parked_keys.c.key, parked_keys.c.head_id).where(
            parked_keys.c.consumer == consumer,
            parked_keys.c.topic == topic,
            parked_keys.c.key.in_(names),
        )
        stmt = stmt.with_for_update() if exclusive else stmt.with_for_update(read=True)
        for row in await conn.execute(stmt):
            found[(topic, row.key)] = row.head_id
    return found


async def set_head(conn: AsyncConnection, consumer: str, key: ParkKey, head_id: str) -> None:
    """Park ``key`` behind ``head_id`` (or move its head there)."""
    stmt = pg_insert(parked_keys).values(
        consumer=consumer, topic=key[0], key=key[1], head_id=head_id
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[parked_keys.c.consumer, parked_keys.c.topic, parked_keys.c.key],
        set_={"head_id": head_id},
    )
    await conn.execute(stmt)


async def park(
    conn: AsyncConnection, consumer: str, key: ParkKey, msg: Incoming, message_id: str
) -> None:
    """Store ``msg`` behind its key's head; storing the same message twice is a no-op."""
    headers = msg.text_headers()
    stmt = pg_insert(parked_messages).values(
        consumer=consumer,
        topic=key[0],
        key=key[1],
        message_id=message_id,
        value=msg.value,
        headers=headers,
        source_partition=msg.partition,
        source_offset=msg.offset,
    )
    await conn.execute(stmt.on_conflict_do_nothing())


async def waiting(conn: AsyncConnection, consumer: str, key: ParkKey) -> list[Parked]:
    """The messages parked behind ``key``, oldest first."""
    rows = await conn.execute(
        sa.select(
            parked_messages.c.id,
            parked_messages.c.message_id,
            parked_messages.c.value,
            sa.cast(parked_messages.c.headers, sa.Text).label("headers"),
            parked_messages.c.source_partition,
            parked_messages.c.source_offset,
        )
        .where(
            parked_messages.c.consumer == consumer,
            parked_messages.c.topic == key[0],
            parked_messages.c.key == key[1],
        )
        .order_by(parked_messages.c.id)
    )
    return [
        Parked(
            row.id,
            Incoming(
                topic=key[0],
                partition=row.source_partition,
                offset=row.source_offset,
                key=key[1].encode(),
                value=bytes(row.value),
                headers={k: str(v).encode() for k, v in json.loads(row.headers).items()},
            ),
            row.message_id,
        )
        for row in rows
    ]


async def unpark(conn: AsyncConnection, parked_id: int) -> None:
    await conn.execute(parked_messages.delete().where(parked_messages.c.id == parked_id))


async def release(conn: AsyncConnection, consumer: str, key: ParkKey) -> None:
    """The key has nothing left waiting: messages with it flow directly again."""
    await conn.execute(
        parked_keys.delete().where(
            parked_keys.c.consumer == consumer,
            parked_keys.c.topic == key[0],
            parked_keys.c.key == key[1],
        )
    )
