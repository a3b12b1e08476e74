"""Litigation rules: case, task, hearing and deadline state machines, SLA and local-day math.

Pure: no I/O, no clock. Time comes from the event (``event.time``) or from the
job's slot (``now``); a tenant's local day is computed with :mod:`zoneinfo`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

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
)
from service.errors import InvalidTransition


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


class HearingStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class DeadlineStatus(StrEnum):
    OPEN = "open"
    MET = "met"


Status = CaseStatus | TaskStatus | HearingStatus | DeadlineStatus

#: (entity, current status or None when absent, event type) -> next status
ALLOWED: dict[tuple[str, Status | None, str], Status] = {
    ("case", None, "litigation.case.opened"): CaseStatus.OPEN,
    ("case", CaseStatus.OPEN, "litigation.case.closed"): CaseStatus.CLOSED,
    ("task", None, "litigation.task.created"): TaskStatus.OPEN,
    ("task", TaskStatus.OPEN, "litigation.task.reassigned"): TaskStatus.OPEN,
    ("task", TaskStatus.OPEN, "litigation.task.completed"): TaskStatus.COMPLETED,
    ("hearing", None, "litigation.hearing.scheduled"): HearingStatus.SCHEDULED,
    ("hearing", HearingStatus.SCHEDULED, "litigation.hearing.scheduled"): HearingStatus.SCHEDULED,
    ("hearing", HearingStatus.CANCELLED, "litigation.hearing.scheduled"): HearingStatus.SCHEDULED,
    ("hearing", HearingStatus.SCHEDULED, "litigation.hearing.cancelled"): HearingStatus.CANCELLED,
    ("deadline", None, "litigation.deadline.set"): DeadlineStatus.OPEN,
    ("deadline", DeadlineStatus.OPEN, "litigation.deadline.set"): DeadlineStatus.OPEN,
    ("deadline", DeadlineStatus.OPEN, "litigation.deadline.met"): DeadlineStatus.MET,
}

#: Events that add something to a case: the case must exist and be open.
NEEDS_OPEN_CASE = frozenset(
    {"litigation.task.created", "litigation.hearing.scheduled", "litigation.deadline.set"}
)


@dataclass(frozen=True)
class Case:
    tenant_id: str
    id: str
    title: str
    owner_id: str
    status: CaseStatus
    opened_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Task:
    tenant_id: str
    id: str
    case_id: str
    title: str
    assignee_id: str
    status: TaskStatus
    created_at: datetime
    due_at: datetime
    sla_hours: int
    completed_at: datetime | None = None
    sla_breached_at: datetime | None = None
    overdue_at: datetime | None = None


@dataclass(frozen=True)
class Hearing:
    tenant_id: str
    id: str
    case_id: str
    starts_at: datetime
    location: str | None
    status: HearingStatus
    reminded_at: datetime | None = None


@dataclass(frozen=True)
class Deadline:
    tenant_id: str
    id: str
    case_id: str
    title: str
    due_at: datetime
    status: DeadlineStatus
    alerted_at: datetime | None = None
    met_at: datetime | None = None


def entity_id(tenant_id: str, id_: str) -> str:
    """The id an entity has across tenants (event log, outbound keys)."""
    return f"{tenant_id}/{id_}"


def _next(entity: str, tenant: str, id_: str, current: Status | None, event_type: str) -> Status:
    target = ALLOWED.get((entity, current, event_type))
    if target is None:
        raise InvalidTransition(entity, entity_id(tenant, id_), current, event_type)
    return target


def require_open_case(case: Case | None, tenant: str, case_id: str, event_type: str) -> Case:
    """Tasks, hearings and deadlines are only added to an open case."""
    if case is None or case.status is not CaseStatus.OPEN:
        status = case.status if case else None
        raise InvalidTransition("case", entity_id(tenant, case_id), status, event_type)
    return case


def apply_case(case: Case | None, event: CaseOpened | CaseClosed) -> Case:
    d = event.data
    target = _next("case", d.tenant_id, d.case_id, case.status if case else None, event.type)
    assert isinstance(target, CaseStatus)
    if isinstance(event, CaseOpened):
        return Case(
            d.tenant_id, d.case_id, event.data.title, event.data.owner_id, target, event.time
        )
    assert case is not None
    return replace(case, status=target, closed_at=event.time)


TaskEvent = TaskCreated | TaskReassigned | TaskCompleted


def apply_task(task: Task | None, case: Case | None, event: TaskEvent) -> Task:
    d = event.data
    target = _next("task", d.tenant_id, d.task_id, task.status if task else None, event.type)
    assert isinstance(target, TaskStatus)
    if isinstance(event, TaskCreated):
        require_open_case(case, d.tenant_id, d.case_id, event.type)
        c = event.data
        return Task(
            c.tenant_id,
            c.task_id,
            c.case_id,
            c.title,
            c.assignee_id,
            target,
            event.time,
            c.due_at,
            c.sla_hours,
        )
    assert task is not None
    if isinstance(event, TaskReassigned):
        return replace(task, assignee_id=event.data.assignee_id)
    return replace(task, status=target, completed_at=event.time)


def apply_hearing(
    hearing: Hearing | None, case: Case | None, event: HearingScheduled | HearingCancelled
) -> Hearing:
    d = event.data
    current = hearing.status if hearing else None
    target = _next("hearing", d.tenant_id, d.hearing_id, current, event.type)
    assert isinstance(target, HearingStatus)
    if isinstance(event, HearingCancelled):
        assert hearing is not None
        return replace(hearing, status=target)
    require_open_case(case, d.tenant_id, d.case_id, event.type)
    s = event.data
    moved = hearing is None or hearing.starts_at != s.starts_at
    # A hearing moved to a new time deserves a reminder for the new time.
    reminded = None if moved or hearing is None else hearing.reminded_at
    return Hearing(s.tenant_id, s.hearing_id, s.case_id, s.starts_at, s.location, target, reminded)


def apply_deadline(
    deadline: Deadline | None, case: Case | None, event: DeadlineSet | DeadlineMet
) -> Deadline:
    d = event.data
    current = deadline.status if deadline else None
    target = _next("deadline", d.tenant_id, d.deadline_id, current, event.type)
    assert isinstance(target, DeadlineStatus)
    if isinstance(event, DeadlineMet):
        assert deadline is not None
        return replace(deadline, status=target, met_at=event.time)
    require_open_case(case, d.tenant_id, d.case_id, event.type)
    s = event.data
    moved = deadline is None or deadline.due_at != s.due_at
    alerted = None if moved or deadline is None else deadline.alerted_at
    return Deadline(s.tenant_id, s.deadline_id, s.case_id, s.title, s.due_at, target, alerted)


def sla_due(task: Task) -> datetime:
    """The moment the task's SLA runs out: creation (by event time) plus its SLA hours."""
    return task.created_at + timedelta(hours=task.sla_hours)


def breaches(task: Task, now: datetime) -> tuple[bool, bool]:
    """(SLA newly breached, newly overdue) at ``now``: each is reported once, then remembered."""
    if task.status is not TaskStatus.OPEN:
        return False, False
    sla = task.sla_breached_at is None and sla_due(task) <= now
    overdue = task.overdue_at is None and task.due_at <= now
    return sla, overdue


def local_day(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def day_start(day: date, timezone: str) -> datetime:
    """Midnight starting ``day`` in ``timezone``, as an aware datetime."""
    return datetime.combine(day, time(0), ZoneInfo(timezone))


def window_end(now: datetime, timezone: str, days_ahead: int) -> datetime:
    """The end of the local day ``days_ahead`` days after ``now``'s local day."""
    return day_start(local_day(now, timezone) + timedelta(days=days_ahead + 1), timezone)


def sla_compliance(met: int, breached: int) -> Decimal | None:
    """Percentage of decided SLAs that were met, to two places; None when none was decided."""
    decided = met + breached
    if decided == 0:
        return None
    return (Decimal(100 * met) / decided).quantize(Decimal("0.01"), ROUND_HALF_UP)
