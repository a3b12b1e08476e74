"""Audit handler: upstream audit events into the audit log, once per event id.

The audit log is itself append-only and keyed by the event id, so a duplicate
(a redelivery, a replay, or a repeat inside one batch) is dropped by the insert,
never an error. The audit row is the record of the event: writing an event_log
row as well would only duplicate it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.audit import AuditRecorded
from schemas.envelope import CloudEvent
from service.engine.uow import UnitOfWork
from service.workflows.usage.tables import audit_log


def _row(event: AuditRecorded) -> dict[str, object]:
    d = event.data
    return {
        "id": event.id,
        "occurred_at": event.time,
        "organization_id": d.organization_id,
        "actor": d.actor,
        "action": d.action,
        "target_type": d.target_type,
        "target_id": d.target_id,
        "reason": d.reason,
        "details": d.details,
        "source": event.source,
    }


async def handle_batch(uow: UnitOfWork, events: Sequence[CloudEvent]) -> None:
    """Insert the batch with one statement; ids already in the log are skipped."""
    rows = [_row(e) for e in events if isinstance(e, AuditRecorded)]
    if rows:
        await uow.conn.execute(pg_insert(audit_log).values(rows).on_conflict_do_nothing())


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    """One event: a batch of one."""
    await handle_batch(uow, [event])
