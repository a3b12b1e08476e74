"""Litigation handler: load the tenant's aggregate, apply the pure rule, save, log."""

from __future__ import annotations

from dataclasses import asdict, fields
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.envelope import CloudEvent
from schemas.litigation import (
    CaseClosed,
    CaseOpened,
    DeadlineMet,
    DeadlineSet,
    HearingCancelled,
    HearingScheduled,
    TaskCompleted,
    TaskCreated,
    TaskReassigned,
    TenantUpserted,
)
from service.engine.uow import UnitOfWork
from service.errors import Retryable
from service.workflows.litigation import rules
from service.workflows.litigation.tables import cases, deadlines, hearings, tasks, tenants

E = TypeVar("E", rules.Case, rules.Task, rules.Hearing, rules.Deadline)

_STATUS: dict[type[Any], type[StrEnum]] = {
    rules.Case: rules.CaseStatus,
    rules.Task: rules.TaskStatus,
    rules.Hearing: rules.HearingStatus,
    rules.Deadline: rules.DeadlineStatus,
}


async def _load(uow: UnitOfWork, table: sa.Table, cls: type[E], tenant: str, id_: str) -> E | None:
    """The entity of this tenant, locked for the rest of the transaction."""
    stmt = sa.select(table).where(table.c.tenant_id == tenant, table.c.id == id_).with_for_update()
    row = (await uow.conn.execute(stmt)).mappings().first()
    if row is None:
        return None
    values = {f.name: row[f.name] for f in fields(cls)}
    values["status"] = _STATUS[cls](values["status"])
    return cls(**values)


async def _save(uow: UnitOfWork, table: sa.Table, entity: Any) -> None:
    values = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in asdict(entity).items()}
    stmt = pg_insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.tenant_id, table.c.id],
        set_={k: stmt.excluded[k] for k in values if k not in ("tenant_id", "id")},
    )
    await uow.conn.execute(stmt)


async def _upsert_tenant(uow: UnitOfWork, event: TenantUpserted) -> None:
    d = event.data
    stmt = pg_insert(tenants).values(id=d.tenant_id, name=d.name, timezone=d.timezone)
    stmt = stmt.on_conflict_do_update(
        index_elements=[tenants.c.id],
        set_={"name": d.name, "timezone": d.timezone, "updated_at": sa.func.now()},
    )
    await uow.conn.execute(stmt)
    uow.record(
        entity_type="litigation_tenant",
        entity_id=d.tenant_id,
        event_type=event.type,
        occurred_at=event.time,
        metadata=d.model_dump(mode="json"),
    )


async def _require_tenant(uow: UnitOfWork, tenant_id: str) -> None:
    found = await uow.conn.scalar(sa.select(tenants.c.id).where(tenants.c.id == tenant_id))
    if found is None:
        # Tenants are keyed apart from cases, so a new tenant's first case may overtake it.
        raise Retryable(f"tenant {tenant_id!r} is not known yet; retrying until it arrives")


async def _apply(uow: UnitOfWork, event: CloudEvent) -> tuple[str, Any, Any]:
    """(entity type, before, after) for a case-scoped event."""
    d: Any = event.data
    tenant = d.tenant_id
    if isinstance(event, CaseOpened):
        await _require_tenant(uow, tenant)
    case = await _load(uow, cases, rules.Case, tenant, d.case_id)
    if isinstance(event, CaseOpened | CaseClosed):
        after_case = rules.apply_case(case, event)
        await _save(uow, cases, after_case)
        return "case", case, after_case
    if isinstance(event, TaskCreated | TaskReassigned | TaskCompleted):
        task = await _load(uow, tasks, rules.Task, tenant, d.task_id)
        after_task = rules.apply_task(task, case, event)
        await _save(uow, tasks, after_task)
        return "task", task, after_task
    if isinstance(event, HearingScheduled | HearingCancelled):
        hearing = await _load(uow, hearings, rules.Hearing, tenant, d.hearing_id)
        after_hearing = rules.apply_hearing(hearing, case, event)
        await _save(uow, hearings, after_hearing)
        return "hearing", hearing, after_hearing
    assert isinstance(event, DeadlineSet | DeadlineMet)
    deadline = await _load(uow, deadlines, rules.Deadline, tenant, d.deadline_id)
    after_deadline = rules.apply_deadline(deadline, case, event)
    await _save(uow, deadlines, after_deadline)
    return "deadline", deadline, after_deadline


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    """Apply one litigation event to its tenant's aggregate and log the transition."""
    if isinstance(event, TenantUpserted):
        await _upsert_tenant(uow, event)
        return
    entity, before, after = await _apply(uow, event)
    uow.record(
        entity_type=f"litigation_{entity}",
        entity_id=rules.entity_id(after.tenant_id, after.id),
        event_type=event.type,
        occurred_at=event.time,
        metadata={
            "from": before.status.value if before else None,
            "to": after.status.value,
            **event.data.model_dump(mode="json"),
        },
    )
