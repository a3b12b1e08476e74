"""Hearing reminders and deadline alerts fire at each tenant's local morning, for that tenant only."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.litigation import (
    CaseOpened,
    DeadlineMet,
    DeadlineSet,
    HearingCancelled,
    HearingScheduled,
    TenantUpserted,
)
from schemas.notifications import NotificationRequested
from service.config import Settings
from service.engine.jobs import find_job
from service.workflows.litigation import rules
from service.workflows.litigation.jobs import tenant_scopes
from service.workflows.litigation.workflow import WORKFLOW
from tests.integration.litigation_support import apply, ev, rows, run

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 10)  # New York is already on summer time, Berlin not yet
TENANTS = {"ny": "America/New_York", "berlin": "Europe/Berlin", "tokyo": "Asia/Tokyo"}
PAST = datetime(2026, 1, 1, tzinfo=UTC)


def local(tenant: str, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(TENANTS[tenant]))


def slot(job_name: str, tenant: str) -> datetime:
    """The UTC instant of the job's cron on DAY in the tenant's timezone."""
    job = find_job(list(WORKFLOW.jobs), job_name)
    midnight = local(tenant, DAY, 0)
    fire = next(iter(CronSim(job.cron, midnight)))
    return fire.astimezone(UTC)


async def seed(engine: AsyncEngine, settings: Settings) -> None:
    for tenant, tz in TENANTS.items():
        t = {"tenant_id": tenant, "case_id": "case-1"}
        await apply(
            engine,
            settings,
            ev(TenantUpserted, PAST, tenant_id=tenant, name=tenant.title(), timezone=tz),
            ev(CaseOpened, PAST, **t, title="Acme v. Initech", owner_id=f"owner-{tenant}"),
            # From now to the end of tomorrow (local): reminded.
            ev(HearingScheduled, PAST, **t, hearing_id="today", starts_at=local(tenant, DAY, 14)),
            ev(
                HearingScheduled,
                PAST,
                **t,
                hearing_id="tomorrow",
                starts_at=local(tenant, DAY + timedelta(days=1), 20),
            ),
            # Not reminded: already started, too far ahead, cancelled.
            ev(
                HearingScheduled,
                PAST,
                **t,
                hearing_id="started",
                starts_at=local(tenant, DAY, 7, 30),
            ),
            ev(
                HearingScheduled,
                PAST,
                **t,
                hearing_id="later",
                starts_at=local(tenant, DAY + timedelta(days=2), 9),
            ),
            ev(
                HearingScheduled,
                PAST,
                **t,
                hearing_id="cancelled",
                starts_at=local(tenant, DAY, 16),
            ),
            ev(HearingCancelled, PAST, **t, hearing_id="cancelled"),
        )


async def reminded(engine: AsyncEngine) -> dict[str, set[str]]:
    found = await rows(
        engine, "SELECT tenant_id, id FROM litigation_hearings WHERE reminded_at IS NOT NULL"
    )
    out: dict[str, set[str]] = {tenant: set() for tenant in TENANTS}
    for row in found:
        out[row.tenant_id].add(row.id)
    return out


async def test_reminders_fire_at_local_0800_in_three_timezones(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, settings)
    async with engine.connect() as conn:
        scopes = {s.id: s.timezone for s in await tenant_scopes(conn)}
    assert scopes == TENANTS
    slots = {tenant: slot("litigation.hearing-reminders", tenant) for tenant in TENANTS}
    assert slots == {
        "tokyo": datetime(2026, 3, 9, 23, tzinfo=UTC),
        "berlin": datetime(2026, 3, 10, 7, tzinfo=UTC),
        "ny": datetime(2026, 3, 10, 12, tzinfo=UTC),
    }

    expected: dict[str, set[str]] = {tenant: set() for tenant in TENANTS}
    for tenant in sorted(TENANTS, key=slots.__getitem__):  # in the order the clock fires them
        now = slots[tenant]
        result = await run(
            engine, settings, "litigation.hearing-reminders", now, scope=(tenant, TENANTS[tenant])
        )
        expected[tenant] = {"today", "tomorrow"}
        assert {(r["tenant_id"], r["hearing_id"]) for r in result.rows} == {
            (tenant, "today"),
            (tenant, "tomorrow"),
        }
        assert await reminded(engine) == expected  # the other tenants are untouched
        again = await run(
            engine, settings, "litigation.hearing-reminders", now, scope=(tenant, TENANTS[tenant])
        )
        assert again.affected == 0  # once per hearing

    stamps = await rows(
        engine,
        "SELECT tenant_id, reminded_at FROM litigation_hearings WHERE reminded_at IS NOT NULL",
    )
    assert {(r.tenant_id, r.reminded_at) for r in stamps} == {(t, s) for t, s in slots.items()}
    for tenant, now in slots.items():
        assert now.astimezone(ZoneInfo(TENANTS[tenant])).time() == time(8)
        assert rules.window_end(now, TENANTS[tenant], 1) == local(
            tenant, DAY + timedelta(days=2), 0
        )

    outbox = await rows(engine, "SELECT payload FROM outbox ORDER BY id")
    notes = [NotificationRequested.model_validate(r.payload) for r in outbox]
    assert len(notes) == 6
    assert {
        (n.data.recipient, n.data.data["hearing_id"], n.data.data["local_time"]) for n in notes
    } == {
        (f"owner-{t}", h, f"{d:%Y-%m-%d} {hh:02}:00")
        for t in TENANTS
        for h, d, hh in (("today", DAY, 14), ("tomorrow", DAY + timedelta(days=1), 20))
    }
    logged = await rows(
        engine,
        "SELECT count(*) AS n FROM event_log WHERE event_type = 'litigation.hearing.reminded'",
    )
    assert logged[0].n == 6


async def test_deadline_alerts_at_local_0900_once_per_deadline(
    settings: Settings, engine: AsyncEngine
) -> None:
    t = {"tenant_id": "tokyo", "case_id": "case-1"}
    await apply(
        engine,
        settings,
        ev(TenantUpserted, PAST, tenant_id="tokyo", name="Mori", timezone="Asia/Tokyo"),
        ev(CaseOpened, PAST, **t, title="In re Globex", owner_id="owner-tokyo"),
        ev(
            DeadlineSet,
            PAST,
            **t,
            deadline_id="missed",
            title="Answer",
            due_at=local("tokyo", DAY, 0, 30),
        ),
        ev(
            DeadlineSet,
            PAST,
            **t,
            deadline_id="soon",
            title="Reply",
            due_at=local("tokyo", DAY + timedelta(days=2), 23),
        ),
        ev(
            DeadlineSet,
            PAST,
            **t,
            deadline_id="far",
            title="Appeal",
            due_at=local("tokyo", DAY + timedelta(days=3), 1),
        ),
        ev(
            DeadlineSet,
            PAST,
            **t,
            deadline_id="done",
            title="Filed",
            due_at=local("tokyo", DAY, 17),
        ),
        ev(DeadlineMet, PAST, **t, deadline_id="done"),
    )
    now = slot("litigation.deadline-alerts", "tokyo")
    assert now == datetime(2026, 3, 10, 0, tzinfo=UTC)

    result = await run(
        engine, settings, "litigation.deadline-alerts", now, scope=("tokyo", "Asia/Tokyo")
    )

    assert sorted(r["deadline_id"] for r in result.rows) == ["missed", "soon"]
    again = await run(
        engine,
        settings,
        "litigation.deadline-alerts",
        now + timedelta(days=1),
        scope=("tokyo", "Asia/Tokyo"),
    )
    assert [r["deadline_id"] for r in again.rows] == ["far"]  # the others were alerted already
    notes = [
        NotificationRequested.model_validate(r.payload)
        for r in await rows(engine, "SELECT payload FROM outbox")
    ]
    assert sorted((n.data.data["deadline_id"], n.data.data["missed"]) for n in notes) == [
        ("far", False),
        ("missed", True),
        ("soon", False),
    ]
