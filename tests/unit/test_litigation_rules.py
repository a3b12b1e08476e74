"""Litigation rules: every (entity, state, event) pair, re-arming, SLA math, local days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import CloudEvent
from schemas.litigation import INBOUND, TenantUpserted
from service.errors import InvalidTransition
from service.workflows.litigation import rules
from service.workflows.litigation.rules import (
    Case,
    CaseStatus,
    Deadline,
    DeadlineStatus,
    Hearing,
    HearingStatus,
    Task,
    TaskStatus,
)

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
TENANT, CASE = "firm-1", "case-1"
LATER = T0 + timedelta(days=3)

DATA: dict[str, dict[str, Any]] = {
    "litigation.case.opened": {"title": "Acme v. Initech", "owner_id": "att-1"},
    "litigation.case.closed": {},
    "litigation.task.created": {
        "task_id": "k1",
        "title": "Draft",
        "assignee_id": "att-2",
        "due_at": LATER,
        "sla_hours": 24,
    },
    "litigation.task.reassigned": {"task_id": "k1", "assignee_id": "att-3"},
    "litigation.task.completed": {"task_id": "k1"},
    "litigation.hearing.scheduled": {"hearing_id": "h1", "starts_at": LATER},
    "litigation.hearing.cancelled": {"hearing_id": "h1"},
    "litigation.deadline.set": {"deadline_id": "d1", "title": "Reply", "due_at": LATER},
    "litigation.deadline.met": {"deadline_id": "d1"},
}
CLASSES = {cls.model_fields["type"].default: cls for cls in INBOUND if cls is not TenantUpserted}
ENTITY_OF = {t: t.split(".")[1] for t in DATA}


def event(type_: str, time: datetime = T0, **changes: Any) -> Any:
    data = {"tenant_id": TENANT, "case_id": CASE, **DATA[type_], **changes}
    built: CloudEvent = CLASSES[type_](id=f"e-{type_}", source="/t", time=time, data=data)
    return built


def open_case(status: CaseStatus = CaseStatus.OPEN) -> Case:
    return Case(TENANT, CASE, "Acme v. Initech", "att-1", status, T0)


def entity_in(entity: str, status: Any) -> Any:
    if status is None:
        return None
    if entity == "case":
        return open_case(status)
    if entity == "task":
        return Task(TENANT, "k1", CASE, "Draft", "att-2", status, T0, LATER, 24)
    if entity == "hearing":
        return Hearing(TENANT, "h1", CASE, LATER, None, status, None)
    return Deadline(TENANT, "d1", CASE, "Reply", LATER, status)


def apply(entity: str, before: Any, ev: Any, case: Case | None) -> Any:
    if entity == "case":
        return rules.apply_case(before, ev)
    fn = {"task": rules.apply_task, "hearing": rules.apply_hearing}.get(
        entity, rules.apply_deadline
    )
    return fn(before, case, ev)


STATES: dict[str, list[Any]] = {
    "case": [None, *CaseStatus],
    "task": [None, *TaskStatus],
    "hearing": [None, *HearingStatus],
    "deadline": [None, *DeadlineStatus],
}
# Written out by hand rather than read from ALLOWED, so the table checks the rules.
LEGAL: dict[tuple[str, Any, str], Any] = {
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
CASES = [(e, s, t) for t, e in ENTITY_OF.items() for s in STATES[e]]


def test_table_matches_the_rules_module() -> None:
    assert rules.ALLOWED == LEGAL


@pytest.mark.parametrize(("entity", "state", "type_"), CASES, ids=[f"{s}-{t}" for _, s, t in CASES])
def test_every_state_and_event_pair(entity: str, state: Any, type_: str) -> None:
    before = entity_in(entity, state)
    expected = LEGAL.get((entity, state, type_))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            apply(entity, before, event(type_), open_case())
        assert caught.value.entity == entity
        assert caught.value.entity_id.startswith(f"{TENANT}/")
        assert caught.value.state == state
        return
    assert apply(entity, before, event(type_), open_case()).status is expected


@pytest.mark.parametrize(
    "type_", ["litigation.task.created", "litigation.hearing.scheduled", "litigation.deadline.set"]
)
@pytest.mark.parametrize("case", [None, open_case(CaseStatus.CLOSED)], ids=["absent", "closed"])
def test_nothing_is_added_to_a_closed_or_absent_case(type_: str, case: Case | None) -> None:
    with pytest.raises(InvalidTransition) as caught:
        apply(ENTITY_OF[type_], None, event(type_), case)
    assert caught.value.entity == "case"
    assert caught.value.entity_id == f"{TENANT}/{CASE}"


def test_task_lifecycle_keeps_event_times() -> None:
    task = rules.apply_task(None, open_case(), event("litigation.task.created"))
    assert (task.created_at, task.due_at, task.sla_hours) == (T0, LATER, 24)
    task = rules.apply_task(task, None, event("litigation.task.reassigned"))
    assert task.assignee_id == "att-3"
    done = rules.apply_task(task, None, event("litigation.task.completed", T0 + timedelta(hours=5)))
    assert (done.status, done.completed_at) == (TaskStatus.COMPLETED, T0 + timedelta(hours=5))


def test_moving_a_hearing_rearms_its_reminder_and_keeping_it_does_not() -> None:
    reminded = Hearing(TENANT, "h1", CASE, LATER, None, HearingStatus.SCHEDULED, T0)
    same = rules.apply_hearing(reminded, open_case(), event("litigation.hearing.scheduled"))
    assert same.reminded_at == T0
    moved_to = LATER + timedelta(hours=2)
    moved = rules.apply_hearing(
        reminded, open_case(), event("litigation.hearing.scheduled", starts_at=moved_to)
    )
    assert (moved.starts_at, moved.reminded_at) == (moved_to, None)


def test_moving_a_deadline_rearms_its_alert() -> None:
    alerted = Deadline(TENANT, "d1", CASE, "Reply", LATER, DeadlineStatus.OPEN, alerted_at=T0)
    same = rules.apply_deadline(alerted, open_case(), event("litigation.deadline.set"))
    assert same.alerted_at == T0
    moved = rules.apply_deadline(
        alerted, open_case(), event("litigation.deadline.set", due_at=LATER + timedelta(days=1))
    )
    assert moved.alerted_at is None


@pytest.mark.parametrize(
    ("hours", "sla", "overdue"),
    [(23, False, False), (24, True, False), (72, True, True), (71, True, False)],
)
def test_breaches_by_time(hours: int, sla: bool, overdue: bool) -> None:
    task = Task(TENANT, "k1", CASE, "Draft", "a", TaskStatus.OPEN, T0, T0 + timedelta(hours=72), 24)
    assert rules.sla_due(task) == T0 + timedelta(hours=24)
    assert rules.breaches(task, T0 + timedelta(hours=hours)) == (sla, overdue)


def test_a_breach_is_reported_once_and_never_for_a_completed_task() -> None:
    task = Task(TENANT, "k1", CASE, "Draft", "a", TaskStatus.OPEN, T0, T0, 1, sla_breached_at=T0)
    assert rules.breaches(task, T0 + timedelta(days=9)) == (False, True)
    done = Task(TENANT, "k1", CASE, "Draft", "a", TaskStatus.COMPLETED, T0, T0, 1)
    assert rules.breaches(done, T0 + timedelta(days=9)) == (False, False)


@pytest.mark.parametrize(
    ("now", "tz", "days", "end"),
    [
        # 08:00 in Tokyo is 23:00 UTC the day before; its window ends at Tokyo midnight.
        (
            datetime(2026, 3, 9, 23, tzinfo=UTC),
            "Asia/Tokyo",
            1,
            datetime(2026, 3, 11, 15, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 10, 12, tzinfo=UTC),
            "America/New_York",
            1,
            datetime(2026, 3, 12, 4, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 10, 7, tzinfo=UTC),
            "Europe/Berlin",
            0,
            datetime(2026, 3, 10, 23, tzinfo=UTC),
        ),
        # Berlin moves to summer time on 2026-03-29: that local day has 23 hours.
        (
            datetime(2026, 3, 28, 7, tzinfo=UTC),
            "Europe/Berlin",
            1,
            datetime(2026, 3, 29, 22, tzinfo=UTC),
        ),
    ],
)
def test_window_end_is_a_local_midnight(now: datetime, tz: str, days: int, end: datetime) -> None:
    assert rules.window_end(now, tz, days) == end


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["Asia/Tokyo", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]),
)
def test_local_day_contains_now(now: datetime, tz: str) -> None:
    day = rules.local_day(now, tz)
    assert rules.day_start(day, tz) <= now < rules.day_start(day + timedelta(days=1), tz)
    assert now.astimezone(ZoneInfo(tz)).date() == day
    assert isinstance(day, date)


@pytest.mark.parametrize(
    ("met", "breached", "pct"),
    [(0, 0, None), (1, 0, Decimal("100.00")), (1, 2, Decimal("33.33")), (2, 1, Decimal("66.67"))],
)
def test_sla_compliance(met: int, breached: int, pct: Decimal | None) -> None:
    assert rules.sla_compliance(met, breached) == pct
