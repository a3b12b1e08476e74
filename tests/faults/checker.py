"""History checker in the manner of Jepsen's queue checker: lost, duplicated, unexpected.

It reads the final database and topics once the run has settled and compares them
with the oracle of the stream that was published:

- lost: a valid event whose effect is missing (claim absent or behind), a bad event
  with no dead letter, a message still waiting in a retry tier or parked;
- duplicated: an effect applied twice (a claim ahead of its path, two event_log rows
  for one event, two dead letters for one bad message);
- unexpected: an effect, log row or dead letter that no event of the stream explains,
  or a dead letter of the wrong class.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.engine import topics
from tests.faults.stream import EXPECTED_CLASS, Stream
from tests.helpers import consume_all, topic_size


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.figures.items()]
        for name in ("lost", "duplicated", "unexpected"):
            items = getattr(self, name)
            parts.append(f"{name}={len(items)}" + (f" e.g. {items[:5]}" if items else ""))
        return ", ".join(parts)


async def _rows(
    engine: AsyncEngine, sql: str, **params: object
) -> list[sa.Row[tuple[object, ...]]]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql), params))


async def settled(engine: AsyncEngine, settings: Settings, stream: Stream) -> bool:
    """True once every message of the stream is decided and everything is published."""
    applied = await _rows(
        engine, "SELECT count(*) FROM processed_messages WHERE consumer = 'claims'"
    )
    dead = await _rows(engine, "SELECT count(*) FROM dead_letters")
    waiting = await _rows(
        engine,
        "SELECT (SELECT count(*) FROM parked_keys) + (SELECT count(*) FROM parked_messages)"
        " + (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
    )
    return (
        applied[0][0] >= len(stream.valid) and dead[0][0] >= len(stream.bad) and waiting[0][0] == 0
    )


async def check(engine: AsyncEngine, settings: Settings, stream: Stream) -> Verdict:
    v = Verdict()
    await _effects(engine, stream, v)
    inbox = await _inbox(engine, stream, v)
    letters = await _dead_letters(engine, settings, stream, v)
    copies = await _waiting(engine, settings, inbox | {str(i) for i in letters.values()}, v)
    v.figures = {
        "events": len(stream),
        "applied": len(inbox & stream.valid.keys()),
        "dead_letters": len(letters),
        "retry_copies": copies,
    }
    return v


async def _effects(engine: AsyncEngine, stream: Stream, v: Verdict) -> None:
    """Each claim is where its path ends, one version and one log row per event applied."""
    claims = {
        r.id: (r.status, r.version)
        for r in await _rows(engine, "SELECT id, status, version FROM claims")
    }
    for claim, (status, steps) in stream.expected.items():
        got = claims.pop(claim, None)
        if got is None:
            v.lost.append(f"claim {claim} missing")
        elif got[1] < steps:
            v.lost.append(f"claim {claim} at version {got[1]} of {steps}")
        elif got[1] > steps:
            v.duplicated.append(f"claim {claim} at version {got[1]} of {steps}")
        elif got[0] != status:
            v.unexpected.append(f"claim {claim} is {got[0]}, expected {status}")
    v.unexpected += [f"claim {c} not in the stream" for c in claims]

    # The event log: one row per applied event, none for anything else.
    logged = Counter(
        r.causation_id
        for r in await _rows(
            engine, "SELECT causation_id FROM event_log WHERE entity_type = 'claim'"
        )
    )
    for event_id in stream.valid:
        n = logged.pop(event_id, 0)
        if n == 0:
            v.lost.append(f"event {event_id} has no event_log row")
        elif n > 1:
            v.duplicated.append(f"event {event_id} has {n} event_log rows")
    v.unexpected += [f"event_log row for {e} not in the stream" for e in logged]


async def _inbox(engine: AsyncEngine, stream: Stream, v: Verdict) -> set[str]:
    """Every valid event once (its primary key makes twice impossible), nothing else."""
    inbox = {
        r.message_id
        for r in await _rows(
            engine, "SELECT message_id FROM processed_messages WHERE consumer = 'claims'"
        )
    }
    v.lost += [f"event {e} not in the inbox" for e in stream.valid.keys() - inbox]
    failing_ids = {e.event_id for e in stream.bad if e.event_id}
    v.unexpected += [f"inbox has {e}" for e in inbox - stream.valid.keys() - failing_ids]
    return inbox


async def _dead_letters(
    engine: AsyncEngine, settings: Settings, stream: Stream, v: Verdict
) -> dict[int, str | None]:
    """Each bad entry dead-lettered exactly once with its class, nothing else; all indexed."""
    bad = {e.value: e for e in stream.bad}
    letters = await _rows(engine, "SELECT id, message_id, payload, error_class FROM dead_letters")
    per_payload = Counter(bytes(r.payload) for r in letters)
    for r in letters:
        entry = bad.get(bytes(r.payload))
        if entry is None:
            v.unexpected.append(f"dead letter {bytes(r.payload)[:80]!r} ({r.error_class})")
        elif r.error_class != EXPECTED_CLASS[entry.kind]:
            v.unexpected.append(f"{entry.kind} entry dead-lettered as {r.error_class}")
    for value, entry in bad.items():
        n = per_payload.get(value, 0)
        if n == 0:
            v.lost.append(f"{entry.kind} entry {value[:60]!r} not dead-lettered")
        elif n > 1:
            v.duplicated.append(f"{entry.kind} entry dead-lettered {n} times")
    dlq = topics.dlq(settings, CLAIMS_INBOUND_TOPIC)
    in_topic = await topic_size(settings, dlq)
    if in_topic != len(letters):
        v.lost.append(f"{dlq} holds {in_topic} records, dead_letters {len(letters)}")

    return {r.id: r.message_id for r in letters}


async def _waiting(engine: AsyncEngine, settings: Settings, decided: set[str], v: Verdict) -> int:
    """Nothing left parked, unpublished or undecided in a retry tier; returns tier copies."""
    tier_copies = 0
    for tier in range(1, len(settings.retry_delays_s) + 1):
        topic = topics.retry(settings, CLAIMS_INBOUND_TOPIC, tier)
        size = await topic_size(settings, topic)
        for record in await consume_all(settings, topic, size) if size else []:
            tier_copies += 1
            try:
                event_id = json.loads(record.value)["id"]
            except (ValueError, KeyError, TypeError):
                v.unexpected.append(f"undecodable record in {topic}")
                continue
            if event_id not in decided:
                v.lost.append(f"{event_id} still waiting in {topic}")
    parked = await _rows(
        engine, "SELECT (SELECT count(*) FROM parked_keys) + (SELECT count(*) FROM parked_messages)"
    )
    if parked[0][0]:
        v.lost.append(f"{parked[0][0]} parked rows left")
    unpublished = await _rows(engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    if unpublished[0][0]:
        v.lost.append(f"{unpublished[0][0]} outbox rows never published")
    return tier_copies


@dataclass
class Delivery:
    """What a downstream consumer of one outbound topic saw, against the outbox.

    - lost: an outbox row never delivered;
    - out_of_order: a key whose events, after dropping repeats by event id (keeping
      the first copy), are not in outbox-id order;
    - unexpected: a record that no outbox row explains (or under the wrong key);
    - duplicates: records beyond the first copy of each event (at-least-once repeats).
    """

    rows: int = 0
    records: int = 0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.out_of_order or self.unexpected)

    @property
    def figures(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "records_seen": self.records,
            "duplicates_seen": self.duplicates,
            "lost": len(self.lost),
            "out_of_order": len(self.out_of_order),
            "unexpected": len(self.unexpected),
        }

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.figures.items()]
        for name in ("lost", "out_of_order", "unexpected"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name} e.g. {items[:5]}")
        return ", ".join(parts)


async def deliveries(
    engine: AsyncEngine, settings: Settings, topic: str, timeout: float = 120
) -> Delivery:
    """Read all of ``topic`` (prefixed name) from offset 0 and compare it with its outbox rows."""
    rows = await _rows(
        engine,
        "SELECT event_id::text AS event_id, key FROM outbox WHERE topic = :t ORDER BY id",
        t=topic,
    )
    expected: dict[str | None, list[str]] = {}
    key_of: dict[str, str | None] = {}
    for row in rows:
        expected.setdefault(row.key, []).append(row.event_id)
        key_of[row.event_id] = row.key
    size = await topic_size(settings, topic)
    records = await consume_all(settings, topic, size, timeout=timeout) if size else []
    d = Delivery(rows=len(rows), records=len(records))
    seen: dict[str | None, list[str]] = {}
    first: set[str] = set()
    for record in records:  # one key lives on one partition, read in offset order
        key = record.key.decode() if record.key is not None else None
        try:
            event_id = str(json.loads(record.value)["id"])
        except (ValueError, KeyError, TypeError):
            d.unexpected.append(f"undecodable record at offset {record.offset}")
            continue
        if event_id not in key_of or key_of[event_id] != key:
            d.unexpected.append(f"record {event_id} under key {key!r}")
        elif event_id in first:
            d.duplicates += 1
        else:
            first.add(event_id)
            seen.setdefault(key, []).append(event_id)
    d.lost = [e for e in key_of if e not in first]
    for key, order in expected.items():
        got = seen.get(key, [])
        if got != [e for e in order if e in first]:
            d.out_of_order.append(f"key {key}: {got[:6]} vs outbox {order[:6]}")
    return d
