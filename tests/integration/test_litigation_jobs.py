"""SLA check, daily snapshot and automation health: set-based, once per breach / day / run."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.litigation import (
    CaseOpened,
    SnapshotTaken,
    TaskCompleted,
    TaskCreated,
    TaskOverdue,
    TaskSlaBreached,
    TenantUpserted,
)
from schemas.notifications import NotificationRequested
from service.config import Settings
from service.workflows.litigation import rules
from tests.integration.litigation_support import apply, ev, rows, run

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 9, tzinfo=UTC)
PAST = datetime(2026, 1, 1, tzinfo=UTC)


async def firm(engine: AsyncEngine, settings: Settings, tenant: str, tz: str = "UTC") -> None:
    await apply(
        engine,
        settings,
        ev(TenantUpserted, PAST, tenant_id=tenant, name=tenant, timezone=tz),
        ev(CaseOpened, PAST, tenant_id=tenant, case_id="case-1", title="Acme", owner_id="owner"),
    )


def task(tenant: str, task_id: str, created: datetime, sla: int, due: datetime) -> TaskCreated:
    built = ev(
        TaskCreated,
        created,
        tenant_id=tenant,
        case_id="case-1",
        task_id=task_id,
        title=f"Task {task_id}",
        assignee_id=f"att-{task_id}",
        due_at=due,
        sla_hours=sla,
    )
    assert isinstance(built, TaskCreated)
    return built


def done(tenant: str, task_id: str, at: datetime) -> TaskCompleted:
    built = ev(TaskCompleted, at, tenant_id=tenant, case_id="case-1", task_id=task_id)
    assert isinstance(built, TaskCompleted)
    return built


async def test_each_breach_is_flagged_and_alerted_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    await firm(engine, settings, "f1")
    await apply(
        engine,
        settings,
        task("f1", "k1", T0, 4, T0 + timedelta(hours=24)),  # SLA at +4 h, due at +24 h
        task("f1", "k2", T0, 48, T0 + timedelta(hours=2)),  # due at +2 h, SLA at +48 h
        task("f1", "k3", T0, 4, T0 + timedelta(hours=2)),
        done("f1", "k3", T0 + timedelta(hours=1)),  # completed in time: never flagged
    )

    first = await run(engine, settings, "litigation.sla-check", T0 + timedelta(hours=4, minutes=15))
    assert [(r["task_id"], r["sla_breached"], r["overdue"]) for r in first.rows] == [
        ("k1", True, False),
        ("k2", False, True),
    ]
    # Every 15 minutes afterwards: nothing new until another threshold passes.
    for minutes in (30, 45, 60):
        later = await run(
            engine, settings, "litigation.sla-check", T0 + timedelta(hours=4, minutes=minutes)
        )
        assert later.affected == 0
    day = await run(engine, settings, "litigation.sla-check", T0 + timedelta(hours=24))
    assert [(r["task_id"], r["sla_breached"], r["overdue"]) for r in day.rows] == [
        ("k1", False, True)
    ]
    two_days = await run(engine, settings, "litigation.sla-check", T0 + timedelta(hours=48))
    assert [(r["task_id"], r["sla_breached"], r["overdue"]) for r in two_days.rows] == [
        ("k2", True, False)
    ]

    flags = await rows(
        engine, "SELECT id, sla_breached_at, overdue_at FROM litigation_tasks ORDER BY id"
    )
    assert [(r.id, r.sla_breached_at, r.overdue_at) for r in flags] == [
        ("k1", T0 + timedelta(hours=4, minutes=15), T0 + timedelta(hours=24)),
        ("k2", T0 + timedelta(hours=48), T0 + timedelta(hours=4, minutes=15)),
        ("k3", None, None),
    ]
    logged = await rows(
        engine,
        "SELECT entity_id, event_type, event_id FROM event_log "
        "WHERE event_type IN ('litigation.task.sla_breached', 'litigation.task.overdue') ORDER BY id",
    )
    assert sorted((r.entity_id, r.event_type) for r in logged) == [
        ("f1/k1", "litigation.task.overdue"),
        ("f1/k1", "litigation.task.sla_breached"),
        ("f1/k2", "litigation.task.overdue"),
        ("f1/k2", "litigation.task.sla_breached"),
    ]
    outbox = [r.payload for r in await rows(engine, "SELECT payload FROM outbox ORDER BY id")]
    announced = [p for p in outbox if p["type"] != "notification.requested"]
    assert {str(r.event_id) for r in logged} == {p["id"] for p in announced}
    for p in announced:
        cls = TaskSlaBreached if p["type"] == "litigation.task.sla_breached" else TaskOverdue
        assert cls.model_validate(p).data.tenant_id == "f1"
    notes = [
        NotificationRequested.model_validate(p)
        for p in outbox
        if p["type"] == "notification.requested"
    ]
    assert sorted((n.data.recipient, n.data.template) for n in notes) == [
        ("att-k1", "litigation.task.overdue"),
        ("att-k1", "litigation.task.sla_breached"),
        ("att-k2", "litigation.task.overdue"),
        ("att-k2", "litigation.task.sla_breached"),
    ]


BERLIN = "Europe/Berlin"


def berlin(day: int, hour: int) -> datetime:
    return datetime.combine(date(2026, 3, day), time(hour), ZoneInfo(BERLIN))


async def test_daily_snapshot_counts_the_local_day_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    await firm(engine, settings, "b", BERLIN)
    await firm(engine, settings, "other")
    await apply(
        engine,
        settings,
        task("b", "met", berlin(9, 10), 24, berlin(12, 0)),
        done("b", "met", berlin(10, 9)),  # closed today within its SLA
        task("b", "late", berlin(9, 12), 24, berlin(12, 0)),
        done("b", "late", berlin(10, 15)),  # closed today, 3 h past its SLA
        task("b", "breaching", berlin(10, 8), 8, berlin(10, 17)),  # open: SLA and due passed today
        task("b", "fresh", berlin(10, 9), 48, berlin(12, 9)),  # open, on track
        task("b", "yesterday", berlin(8, 9), 24, berlin(9, 9)),
        done("b", "yesterday", berlin(9, 8)),  # closed yesterday: not today's figure
        task("other", "x", berlin(10, 8), 1, berlin(10, 9)),  # another tenant's task
    )
    now = datetime.combine(date(2026, 3, 10), time(23, 59), ZoneInfo(BERLIN))

    result = await run(engine, settings, "litigation.daily-snapshot", now, scope=("b", BERLIN))

    assert result.rows == [
        {
            "tenant_id": "b",
            "day": "2026-03-10",
            "open_tasks": 2,
            "overdue_tasks": 1,
            "closed_tasks": 2,
            "sla_met": 1,
            "sla_breached": 2,
            "sla_compliance_pct": Decimal("33.33"),
        }
    ]
    assert rules.sla_compliance(1, 2) == Decimal("33.33")
    for retry in (now, now + timedelta(seconds=30)):  # a re-run the same local day changes nothing
        again = await run(engine, settings, "litigation.daily-snapshot", retry, scope=("b", BERLIN))
        assert again.affected == 0
    stored = await rows(engine, "SELECT tenant_id, day FROM litigation_snapshots")
    assert [(r.tenant_id, r.day) for r in stored] == [("b", date(2026, 3, 10))]
    payloads = [r.payload for r in await rows(engine, "SELECT payload FROM outbox")]
    assert len(payloads) == 1
    assert SnapshotTaken.model_validate(payloads[0]).data.sla_compliance_pct == Decimal("33.33")
    logged = await rows(
        engine, "SELECT count(*) AS n FROM event_log WHERE event_type = 'litigation.snapshot.taken'"
    )
    assert logged[0].n == 1

    next_day = await run(
        engine, settings, "litigation.daily-snapshot", now + timedelta(days=1), scope=("b", BERLIN)
    )
    assert next_day.rows[0]["day"] == "2026-03-11"
    assert next_day.rows[0]["closed_tasks"] == 0 and next_day.rows[0]["sla_compliance_pct"] is None


async def insert_runs(engine: AsyncEngine, runs: list[tuple[str, datetime, str]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO job_runs (job, slot, trigger, status, error) "
                "VALUES (:job, :slot, 'scheduled', :status, :error)"
            ),
            [
                {"job": j, "slot": s, "status": st, "error": "boom" if st == "failed" else None}
                for j, s, st in runs
            ],
        )


async def test_health_check_reports_failed_and_missed_runs_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    await insert_runs(
        engine,
        [
            ("litigation.sla-check", T0, "failed"),
            ("litigation.hearing-reminders", T0, "missed"),
            ("litigation.daily-snapshot", T0, "succeeded"),
            ("claims.release-orphaned", T0, "failed"),  # not a litigation automation
            ("litigation.sla-check", T0 + timedelta(days=1), "failed"),  # a later slot
        ],
    )

    first = await run(engine, settings, "litigation.automation-health", T0 + timedelta(hours=1))

    assert [(r["job"], r["status"]) for r in first.rows] == [
        ("litigation.sla-check", "failed"),
        ("litigation.hearing-reminders", "missed"),
    ]
    assert first.rows[0]["error"] == "boom"
    assert (
        await run(engine, settings, "litigation.automation-health", T0 + timedelta(hours=2))
    ).affected == 0
    await insert_runs(engine, [("litigation.deadline-alerts", T0 + timedelta(hours=2), "failed")])
    second = await run(engine, settings, "litigation.automation-health", T0 + timedelta(hours=3))
    assert [r["job"] for r in second.rows] == ["litigation.deadline-alerts"]

    notes = [
        NotificationRequested.model_validate(r.payload)
        for r in await rows(engine, "SELECT payload FROM outbox ORDER BY id")
    ]
    assert [(n.data.recipient, n.data.data["count"]) for n in notes] == [
        ("automation-ops", 2),
        ("automation-ops", 1),
    ]
    assert [r["job"] for r in notes[0].data.data["runs"]] == [
        "litigation.sla-check",
        "litigation.hearing-reminders",
    ]
    logged = await rows(
        engine,
        "SELECT count(*) AS n FROM event_log WHERE event_type = 'litigation.automation.unhealthy'",
    )
    assert logged[0].n == 3
