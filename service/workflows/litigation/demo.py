"""Litigation demo data: three firms in three timezones, with cases, tasks, hearings, deadlines."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from schemas.envelope import CloudEvent, make
from schemas.litigation import (
    LITIGATION_INBOUND_TOPIC,
    CaseOpened,
    DeadlineSet,
    HearingScheduled,
    TaskCompleted,
    TaskCreated,
    TenantUpserted,
)

NS = uuid.UUID("0c6f2b1a-4d8e-4f3a-9b7c-5e1d2a3f4b02")
SOURCE = "/demo"

TENANTS = [
    ("hale", "Hale & Partners", "America/New_York"),
    ("brandt", "Brandt Rechtsanwälte", "Europe/Berlin"),
    ("mori", "Mori Law Office", "Asia/Tokyo"),
]
# (case, title, owner) for every tenant
CASES = [("case-1", "Acme v. Initech", "att-lead"), ("case-2", "In re Globex", "att-lead")]
# (task, case, assignee, hours since creation, SLA hours, hours until due, completed)
TASKS: list[tuple[str, str, str, int, int, int, bool]] = [
    ("task-1", "case-1", "att-ana", 60, 48, 12, False),  # SLA breached, not yet due
    ("task-2", "case-1", "att-ben", 100, 72, -4, False),  # SLA breached and overdue
    ("task-3", "case-2", "att-ana", 10, 24, 30, False),  # on track
    ("task-4", "case-2", "att-ben", 30, 24, 10, True),  # completed late
]


def _event(cls: type[CloudEvent], seed: str, time: datetime, **data: Any) -> CloudEvent:
    return make(cls, time, source=SOURCE, event_id=str(uuid.uuid5(NS, seed)), **data)


def _tenant_events(tenant: str, now: datetime) -> list[CloudEvent]:
    start = now - timedelta(days=10)
    events = [
        _event(
            CaseOpened,
            f"{tenant}:{case}",
            start,
            tenant_id=tenant,
            case_id=case,
            title=title,
            owner_id=owner,
        )
        for case, title, owner in CASES
    ]
    for task, case, assignee, age, sla, due_in, done in TASKS:
        created = now - timedelta(hours=age)
        ref = {"tenant_id": tenant, "case_id": case, "task_id": task}
        events.append(
            _event(
                TaskCreated,
                f"{tenant}:{task}",
                created,
                **ref,
                title=f"Demo {task}",
                assignee_id=assignee,
                due_at=now + timedelta(hours=due_in),
                sla_hours=sla,
            )
        )
        if done:
            events.append(_event(TaskCompleted, f"{tenant}:{task}:done", now, **ref))
    events.append(
        _event(
            HearingScheduled,
            f"{tenant}:h-1",
            start,
            tenant_id=tenant,
            case_id="case-1",
            hearing_id="h-1",
            starts_at=now + timedelta(hours=26),
            location="Courtroom 4",
        )
    )
    events.append(
        _event(
            DeadlineSet,
            f"{tenant}:d-1",
            start,
            tenant_id=tenant,
            case_id="case-2",
            deadline_id="d-1",
            title="File the reply brief",
            due_at=now + timedelta(days=2),
        )
    )
    return events


def demo_events(now: datetime) -> list[tuple[str, CloudEvent]]:
    events: list[CloudEvent] = []
    for tenant, name, tz in TENANTS:
        events.append(
            _event(
                TenantUpserted,
                tenant,
                now - timedelta(days=30),
                tenant_id=tenant,
                name=name,
                timezone=tz,
            )
        )
        events.extend(_tenant_events(tenant, now))
    return [(LITIGATION_INBOUND_TOPIC, e) for e in events]
