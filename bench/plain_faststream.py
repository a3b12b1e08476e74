"""Mode (c) of the pipeline benchmark: claims consumed the way most teams write it.

A FastStream app with one subscriber whose parameter is the pydantic event model,
one database transaction per message, and FastStream's default offset handling
(aiokafka auto-commit). It writes the same rows as jobstream: an inbox row (so a
redelivery is not applied twice), the claim, members and tasks, and one event-log
row per claim event, using the same pure claim rules.

Run: ``faststream run bench.plain_faststream:app`` with BENCH_DATABASE_URL,
BENCH_KAFKA, BENCH_TOPIC and BENCH_GROUP set.
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from faststream import FastStream
from faststream.kafka import KafkaBroker
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.claims import ClaimsInbound, MemberUpserted, TaskUpserted
from service.db.tables import event_log, processed_messages
from service.workflows.claims import rules
from service.workflows.claims.tables import claims, members, tasks

# Per-message "Received"/"Processed" lines at DEBUG: a production app logs at INFO or above.
broker = KafkaBroker(os.environ.get("BENCH_KAFKA", "localhost:9092"), log_level=logging.DEBUG)
app = FastStream(broker)
db = create_async_engine(os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg:///claims"))


@broker.subscriber(
    os.environ.get("BENCH_TOPIC", "claims.events"),
    group_id=os.environ.get("BENCH_GROUP", "claims-plain"),
    auto_offset_reset="earliest",
)
async def on_claim_event(event: ClaimsInbound) -> None:
    async with db.begin() as conn:
        new = await conn.execute(
            insert(processed_messages)
            .values(consumer="plain", message_id=event.id)
            .on_conflict_do_nothing()
            .returning(processed_messages.c.message_id)
        )
        if new.first() is None:
            return  # seen before
        if isinstance(event, MemberUpserted):
            row = event.data.model_dump()
            row["id"] = row.pop("member_id")
            stmt = insert(members).values(row)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=row))
            return
        if isinstance(event, TaskUpserted):
            row = {"id": event.data.task_id, "title": event.data.title}
            stmt = insert(tasks).values(row)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=row))
            return
        found = (
            await conn.execute(
                sa.select(claims).where(claims.c.id == event.data.claim_id).with_for_update()
            )
        ).first()
        current = None
        if found is not None:
            row = {k: v for k, v in found._mapping.items() if k != "version"}
            current = rules.Claim(**{**row, "status": rules.ClaimStatus(row["status"])})
        claim = rules.apply(current, event)
        values = {**claim.__dict__, "status": claim.status.value}
        if current is None:
            await conn.execute(claims.insert().values(values))
        else:
            await conn.execute(
                claims.update()
                .where(claims.c.id == claim.id)
                .values({**values, "version": claims.c.version + 1})
            )
        await conn.execute(
            event_log.insert().values(
                occurred_at=event.time,
                actor=event.source,
                entity_type="claim",
                entity_id=claim.id,
                event_type=event.type,
                metadata={
                    "from": current.status.value if current else None,
                    "to": claim.status.value,
                    **event.data.model_dump(mode="json"),
                },
                correlation_id=event.correlationid or event.id,
                causation_id=event.id,
            )
        )
