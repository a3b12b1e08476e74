"""Claims handler: load the aggregate, apply the pure rule, save, log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.claims import MemberUpserted, TaskUpserted
from schemas.envelope import CloudEvent
from service.engine.uow import UnitOfWork
from service.workflows.claims import rules
from service.workflows.claims.tables import claims, members, tasks


async def _upsert(uow: UnitOfWork, table: sa.Table, values: dict[str, Any]) -> None:
    stmt = pg_insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"},
    )
    await uow.conn.execute(stmt)


async def load_claim(uow: UnitOfWork, claim_id: str) -> rules.Claim | None:
    row = (
        await uow.conn.execute(sa.select(claims).where(claims.c.id == claim_id).with_for_update())
    ).first()
    if row is None:
        return None
    return rules.Claim(
        id=row.id,
        task_id=row.task_id,
        member_id=row.member_id,
        status=rules.ClaimStatus(row.status),
        reviewer_id=row.reviewer_id,
        submitted_at=row.submitted_at,
        review_started_at=row.review_started_at,
        updated_at=row.updated_at,
    )


async def save_claim(uow: UnitOfWork, claim: rules.Claim, *, new: bool) -> None:
    values = {
        "task_id": claim.task_id,
        "member_id": claim.member_id,
        "status": claim.status.value,
        "reviewer_id": claim.reviewer_id,
        "submitted_at": claim.submitted_at,
        "review_started_at": claim.review_started_at,
        "updated_at": claim.updated_at,
    }
    if new:
        await uow.conn.execute(claims.insert().values(id=claim.id, **values))
    else:
        await uow.conn.execute(
            claims.update()
            .where(claims.c.id == claim.id)
            .values(**values, version=claims.c.version + 1)
        )


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    if isinstance(event, MemberUpserted):
        data = event.data
        await _upsert(uow, members, {"id": data.member_id, "name": data.name, "email": data.email})
        return
    if isinstance(event, TaskUpserted):
        await _upsert(uow, tasks, {"id": event.data.task_id, "title": event.data.title})
        return
    claim_id: str = event.data.claim_id  # type: ignore[attr-defined]
    before = await load_claim(uow, claim_id)
    after = rules.apply(before, event)  # type: ignore[arg-type]
    await save_claim(uow, after, new=before is None)
    uow.record(
        entity_type="claim",
        entity_id=claim_id,
        event_type=event.type,
        occurred_at=event.time,
        metadata={
            "from": before.status.value if before else None,
            "to": after.status.value,
            **event.data.model_dump(mode="json"),
        },
    )
