"""Mode (d) of the pipeline benchmark: the same rows COPY'd straight into PostgreSQL.

No broker and no validation on the clock: the rows every other mode writes (inbox,
members, tasks, final claims, one event-log row per claim event) are built first,
then written with ``copy_records_to_table`` in one transaction, which is timed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.claims_stream import Event
from schemas.claims import ClaimsInbound, MemberUpserted, TaskUpserted
from service.workflows.claims import rules

_EVENTS: TypeAdapter[Any] = TypeAdapter(ClaimsInbound)
CLAIM_COLUMNS = (
    "id",
    "task_id",
    "member_id",
    "status",
    "reviewer_id",
    "submitted_at",
    "review_started_at",
    "updated_at",
    "version",
)
LOG_COLUMNS = (
    "occurred_at",
    "actor",
    "entity_type",
    "entity_id",
    "event_type",
    "metadata",
    "correlation_id",
    "causation_id",
)


def rows(events: Sequence[Event], at: datetime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the pipeline writes for ``events``, by table."""
    inbox, people, titles, log = [], {}, {}, []
    state: dict[str, rules.Claim] = {}
    versions: dict[str, int] = {}
    for raw in events:
        event = _EVENTS.validate_json(raw.encode(at))
        inbox.append(("bench", event.id))
        if isinstance(event, MemberUpserted):
            people[event.data.member_id] = (event.data.member_id, event.data.name, event.data.email)
            continue
        if isinstance(event, TaskUpserted):
            titles[event.data.task_id] = (event.data.task_id, event.data.title)
            continue
        before = state.get(event.data.claim_id)
        after = state[event.data.claim_id] = rules.apply(before, event)
        versions[after.id] = versions.get(after.id, 0) + 1
        meta = {"from": before.status.value if before else None, "to": after.status.value}
        log.append(
            (
                event.time,
                event.source,
                "claim",
                after.id,
                event.type,
                json.dumps({**meta, **event.data.model_dump(mode="json")}),
                event.id,
                event.id,
            )
        )
    claims = [
        (
            *(c.id, c.task_id, c.member_id, c.status.value, c.reviewer_id),
            *(c.submitted_at, c.review_started_at, c.updated_at, versions[c.id]),
        )
        for c in state.values()
    ]
    return {
        "processed_messages": inbox,
        "members": list(people.values()),
        "tasks": list(titles.values()),
        "claims": claims,
        "event_log": log,
    }


COLUMNS = {
    "processed_messages": ("consumer", "message_id"),
    "members": ("id", "name", "email"),
    "tasks": ("id", "title"),
    "claims": CLAIM_COLUMNS,
    "event_log": LOG_COLUMNS,
}


async def copy(engine: AsyncEngine, tables: dict[str, list[tuple[Any, ...]]]) -> float:
    """COPY every table in one transaction; the seconds it took, commit included."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        started = time.perf_counter()
        async with raw.transaction():
            for table, records in tables.items():
                await raw.copy_records_to_table(table, records=records, columns=COLUMNS[table])
        return time.perf_counter() - started
