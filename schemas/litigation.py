"""Litigation events: tenants, cases, tasks with SLAs, hearings and deadlines.

Every payload names its tenant; ids are unique within a tenant only.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field

from schemas.envelope import CloudEvent, Id, Name, Payload

LITIGATION_INBOUND_TOPIC = "litigation.events"
LITIGATION_OUTBOUND_TOPIC = "litigation.out"

_T = "2026-11-02T14:00:00Z"


def _iana(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA timezone; use a name like 'Europe/Berlin'"
        ) from None
    return value


Timezone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_iana)]
SlaHours = Annotated[int, Field(ge=1, le=8760)]


def _example(type_: str, data: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "8a0c5b1e-57c4-4f0e-a1e4-2b6c1d9e7f10",
                    "source": "/case-management",
                    "type": type_,
                    "time": _T,
                    "data": data,
                }
            ]
        }
    )


class TenantUpsertedData(Payload):
    """A law firm using the service, and the timezone its people work in."""

    tenant_id: Id
    name: Name
    timezone: Timezone


class CaseRef(Payload):
    """Base of every payload about one case of one tenant."""

    tenant_id: Id
    case_id: Id


class CaseOpenedData(CaseRef):
    """A new case; ``owner_id`` (the lead attorney) gets its reminders and alerts."""

    title: Name
    owner_id: Id


class CaseClosedData(CaseRef):
    """The case is closed; its tasks, hearings and deadlines stay as they are."""


class TaskCreatedData(CaseRef):
    """Work on a case: due at ``due_at``; its SLA asks completion within ``sla_hours``."""

    task_id: Id
    title: Name
    assignee_id: Id
    due_at: AwareDatetime
    sla_hours: SlaHours


class TaskReassignedData(CaseRef):
    task_id: Id
    assignee_id: Id


class TaskCompletedData(CaseRef):
    task_id: Id


class HearingScheduledData(CaseRef):
    """A hearing (new or moved: a new time re-arms its reminder)."""

    hearing_id: Id
    starts_at: AwareDatetime
    location: Name | None = None


class HearingCancelledData(CaseRef):
    hearing_id: Id


class DeadlineSetData(CaseRef):
    """A court or filing deadline (new or moved: a new date re-arms its alert)."""

    deadline_id: Id
    title: Name
    due_at: AwareDatetime


class DeadlineMetData(CaseRef):
    deadline_id: Id


class TaskFlaggedData(CaseRef):
    """Outbound: an open task crossed its SLA or its due date (announced once)."""

    task_id: Id
    assignee_id: Id
    due_at: AwareDatetime
    sla_due_at: AwareDatetime


class SnapshotTakenData(Payload):
    """Outbound: one tenant's figures for one local day (taken once, at 23:59 local)."""

    tenant_id: Id
    day: date
    open_tasks: Annotated[int, Field(ge=0)]
    overdue_tasks: Annotated[int, Field(ge=0)]
    closed_tasks: Annotated[int, Field(ge=0)]
    sla_met: Annotated[int, Field(ge=0)]
    sla_breached: Annotated[int, Field(ge=0)]
    #: Share of SLAs decided that day (met by completion or breached) that were met.
    sla_compliance_pct: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] | None


_CASE = {"tenant_id": "firm-1", "case_id": "case-7"}


class TenantUpserted(CloudEvent):
    model_config = _example(
        "litigation.tenant.upserted",
        {"tenant_id": "firm-1", "name": "Hale & Partners", "timezone": "Europe/Berlin"},
    )
    key_field = "tenant_id"
    type: Literal["litigation.tenant.upserted"] = "litigation.tenant.upserted"
    data: TenantUpsertedData


class CaseOpened(CloudEvent):
    model_config = _example(
        "litigation.case.opened", _CASE | {"title": "Acme v. Initech", "owner_id": "att-1"}
    )
    key_field = "case_id"
    type: Literal["litigation.case.opened"] = "litigation.case.opened"
    data: CaseOpenedData


class CaseClosed(CloudEvent):
    model_config = _example("litigation.case.closed", _CASE)
    key_field = "case_id"
    type: Literal["litigation.case.closed"] = "litigation.case.closed"
    data: CaseClosedData


class TaskCreated(CloudEvent):
    model_config = _example(
        "litigation.task.created",
        _CASE
        | {
            "task_id": "task-3",
            "title": "Draft the motion to dismiss",
            "assignee_id": "att-2",
            "due_at": "2026-11-06T17:00:00Z",
            "sla_hours": 48,
        },
    )
    key_field = "case_id"
    type: Literal["litigation.task.created"] = "litigation.task.created"
    data: TaskCreatedData


class TaskReassigned(CloudEvent):
    model_config = _example(
        "litigation.task.reassigned", _CASE | {"task_id": "task-3", "assignee_id": "att-4"}
    )
    key_field = "case_id"
    type: Literal["litigation.task.reassigned"] = "litigation.task.reassigned"
    data: TaskReassignedData


class TaskCompleted(CloudEvent):
    model_config = _example("litigation.task.completed", _CASE | {"task_id": "task-3"})
    key_field = "case_id"
    type: Literal["litigation.task.completed"] = "litigation.task.completed"
    data: TaskCompletedData


class HearingScheduled(CloudEvent):
    model_config = _example(
        "litigation.hearing.scheduled",
        _CASE
        | {"hearing_id": "h-1", "starts_at": "2026-11-10T09:30:00Z", "location": "Courtroom 4"},
    )
    key_field = "case_id"
    type: Literal["litigation.hearing.scheduled"] = "litigation.hearing.scheduled"
    data: HearingScheduledData


class HearingCancelled(CloudEvent):
    model_config = _example("litigation.hearing.cancelled", _CASE | {"hearing_id": "h-1"})
    key_field = "case_id"
    type: Literal["litigation.hearing.cancelled"] = "litigation.hearing.cancelled"
    data: HearingCancelledData


class DeadlineSet(CloudEvent):
    model_config = _example(
        "litigation.deadline.set",
        _CASE
        | {"deadline_id": "d-1", "title": "File the reply brief", "due_at": "2026-11-12T23:59:00Z"},
    )
    key_field = "case_id"
    type: Literal["litigation.deadline.set"] = "litigation.deadline.set"
    data: DeadlineSetData


class DeadlineMet(CloudEvent):
    model_config = _example("litigation.deadline.met", _CASE | {"deadline_id": "d-1"})
    key_field = "case_id"
    type: Literal["litigation.deadline.met"] = "litigation.deadline.met"
    data: DeadlineMetData


_FLAGGED = _CASE | {
    "task_id": "task-3",
    "assignee_id": "att-2",
    "due_at": "2026-11-06T17:00:00Z",
    "sla_due_at": "2026-11-04T14:00:00Z",
}


class TaskSlaBreached(CloudEvent):
    model_config = _example("litigation.task.sla_breached", _FLAGGED)
    key_field = "case_id"
    type: Literal["litigation.task.sla_breached"] = "litigation.task.sla_breached"
    data: TaskFlaggedData


class TaskOverdue(CloudEvent):
    model_config = _example("litigation.task.overdue", _FLAGGED)
    key_field = "case_id"
    type: Literal["litigation.task.overdue"] = "litigation.task.overdue"
    data: TaskFlaggedData


class SnapshotTaken(CloudEvent):
    model_config = _example(
        "litigation.snapshot.taken",
        {
            "tenant_id": "firm-1",
            "day": "2026-11-02",
            "open_tasks": 12,
            "overdue_tasks": 2,
            "closed_tasks": 5,
            "sla_met": 4,
            "sla_breached": 1,
            "sla_compliance_pct": "80.00",
        },
    )
    key_field = "tenant_id"
    type: Literal["litigation.snapshot.taken"] = "litigation.snapshot.taken"
    data: SnapshotTakenData


#: Everything an upstream service may publish on ``litigation.events``.
LitigationInbound = Annotated[
    TenantUpserted
    | CaseOpened
    | CaseClosed
    | TaskCreated
    | TaskReassigned
    | TaskCompleted
    | HearingScheduled
    | HearingCancelled
    | DeadlineSet
    | DeadlineMet,
    Field(discriminator="type"),
]

INBOUND = (
    TenantUpserted,
    CaseOpened,
    CaseClosed,
    TaskCreated,
    TaskReassigned,
    TaskCompleted,
    HearingScheduled,
    HearingCancelled,
    DeadlineSet,
    DeadlineMet,
)
OUTBOUND = (TaskSlaBreached, TaskOverdue, SnapshotTaken)
