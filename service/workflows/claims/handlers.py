"""Claims handler: load the aggregates, apply the pure rules in order, save, log.

One code path for one event and for a batch: a batch loads every claim it touches
with one ``SELECT ... FOR UPDATE``, applies each event to the in-memory state in
order, and writes the results with one statement per kind of change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.claims import MemberUpserted, TaskUpserted
from schemas.envelope import CloudEvent
from service.engine.uow import UnitOfWork
from service.errors import InvalidTransition
from service.workflows.claims import rules
from service.workflows.claims.tables import claims, members, tasks

_FIELDS = (
    "task_id",
    "member_id",
    "status",
    "reviewer_id",
    "submitted_at",
    "review_started_at",
    "updated_at",
)


async def _upsert(uow: UnitOfWork, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = pg_insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={k: stmt.excluded[k] for k in rows[0] if k != "id"},
    )
    await uow.conn.execute(stmt, rows)


async def load_claims(uow: UnitOfWork, claim_ids: Sequence[str]) -> dict[str, rules.Claim]:
    result = await uow.conn.execute(
        sa.select(claims).where(claims.c.id.in_(sorted(set(claim_ids)))).with_for_update()
    )
    return {
        row.id: rules.Claim(
            id=row.id,
            task_id=row.task_id,
            member_id=row.member_id,
            status=rules.ClaimStatus(row.status),
            reviewer_id=row.reviewer_id,
            submitted_at=row.submitted_at,
            review_started_at=row.review_started_at,
            updated_at=row.updated_at,
        )
        for row in result
    }


def _values(claim: rules.Claim) -> dict[str, Any]:
    values = {field: getattr(claim, field) for field in _FIELDS}
    values["status"] = claim.status.value
    return values


async def save_claims(
    uow: UnitOfWork,
    before: dict[str, rules.Claim],
    after: dict[str, rules.Claim],
    changes: Counter[str],
) -> None:
    new = [
        {"id": cid, "version": changes[cid], **_values(c)}
        for cid, c in after.items()
        if cid not in before
    ]
    old = [
        {"b_id": cid, "b_changes": changes[cid], **_values(c)}
        for cid, c in after.items()
        if cid in before
    ]
    if new:
        await uow.conn.execute(claims.insert(), new)
    if old:
        await uow.conn.execute(
            claims.update()
            .where(claims.c.id == sa.bindparam("b_id"))
            .values(version=claims.c.version + sa.bindparam("b_changes")),
            old,
        )


async def handle_batch(uow: UnitOfWork, events: Sequence[CloudEvent]) -> None:
    """Apply ``events`` in order; raises InvalidTransition for the first one not allowed."""
    people: dict[str, dict[str, Any]] = {}
    titles: dict[str, dict[str, Any]] = {}
    lifecycle: list[CloudEvent] = []
    for event in events:
        if isinstance(event, MemberUpserted):
            data = event.data
            people[data.member_id] = {"id": data.member_id, "name": data.name, "email": data.email}
        elif isinstance(event, TaskUpserted):
            titles[event.data.task_id] = {"id": event.data.task_id, "title": event.data.title}
        else:
            lifecycle.append(event)
    await _upsert(uow, members, list(people.values()))
    await _upsert(uow, tasks, list(titles.values()))
    if not lifecycle:
        return
    before = await load_claims(uow, [e.data.claim_id for e in lifecycle])  # type: ignore[attr-defined]
    state = dict(before)
    changes: Counter[str] = Counter()
    for event in lifecycle:
        claim_id: str = event.data.claim_id  # type: ignore[attr-defined]
        current = state.get(claim_id)
        try:
            after = rules.apply(current, event)  # type: ignore[arg-type]
        except InvalidTransition as exc:
            exc.event_id = event.id  # the engine splits the batch right here
            raise
        state[claim_id] = after
        changes[claim_id] += 1
        uow.use(event)
        uow.record(
            entity_type="claim",
            entity_id=claim_id,
            event_type=event.type,
            occurred_at=event.time,
            metadata={
                "from": current.status.value if current else None,
                "to": after.status.value,
                **event.data.model_dump(mode="json"),
            },
        )
    await save_claims(uow, before, {cid: state[cid] for cid in changes}, changes)


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    await handle_batch(uow, [event])
