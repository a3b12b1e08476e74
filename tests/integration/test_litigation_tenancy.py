"""Tenant isolation: a tenant's job run and events never read or change another tenant's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.litigation import (
    CaseClosed,
    CaseOpened,
    DeadlineSet,
    HearingScheduled,
    TaskCompleted,
    TaskCreated,
    TenantUpserted,
)
from service.config import Settings
from service.errors import InvalidTransition, Retryable
from tests.integration.litigation_support import apply, ev, rows, run

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
PAST = T0 - timedelta(days=30)
TABLES = (
    "litigation_tenants",
    "litigation_cases",
    "litigation_tasks",
    "litigation_hearings",
    "litigation_deadlines",
    "litigation_snapshots",
)
JOBS = (
    "litigation.sla-check",
    "litigation.hearing-reminders",
    "litigation.deadline-alerts",
    "litigation.daily-snapshot",
)


async def seed(engine: AsyncEngine, settings: Settings, tenant: str, tz: str) -> None:
    """The same ids in every tenant, and something for every job to act on."""
    t = {"tenant_id": tenant, "case_id": "case-1"}
    await apply(
        engine,
        settings,
        ev(TenantUpserted, PAST, tenant_id=tenant, name=tenant, timezone=tz),
        ev(CaseOpened, PAST, **t, title="Acme", owner_id=f"owner-{tenant}"),
        ev(
            TaskCreated,
            PAST,
            **t,
            task_id="k1",
            title="Draft",
            assignee_id="a",
            due_at=T0 - timedelta(hours=1),
            sla_hours=2,
        ),
        ev(
            TaskCreated,
            PAST,
            **t,
            task_id="k2",
            title="File",
            assignee_id="a",
            due_at=T0,
            sla_hours=2,
        ),
        ev(TaskCompleted, T0 - timedelta(hours=3), **t, task_id="k2"),
        ev(HearingScheduled, PAST, **t, hearing_id="h1", starts_at=T0 + timedelta(hours=20)),
        ev(
            DeadlineSet, PAST, **t, deadline_id="d1", title="Reply", due_at=T0 + timedelta(hours=20)
        ),
    )


async def tenant_rows(engine: AsyncEngine, tenant: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    async with engine.connect() as conn:
        for table in TABLES:
            key = "id" if table == "litigation_tenants" else "tenant_id"
            result = await conn.execute(
                sa.text(f"SELECT * FROM {table} WHERE {key} = :t ORDER BY 1, 2"), {"t": tenant}
            )
            out[table] = [dict(r._mapping) for r in result]
    return out


async def mentions_of_beta(engine: AsyncEngine) -> int:
    found = await rows(
        engine,
        "SELECT (SELECT count(*) FROM event_log WHERE metadata::text LIKE '%beta%' "
        "OR entity_id LIKE 'beta%') + (SELECT count(*) FROM outbox WHERE payload::text LIKE '%beta%') "
        "AS n",
    )
    return int(found[0].n)


async def test_a_tenants_job_runs_never_read_or_change_another_tenants_rows(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, settings, "alpha", "Europe/Berlin")
    await seed(engine, settings, "beta", "America/New_York")
    # Poison beta: any statement that evaluated beta's tenant row would fail on its zone,
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE litigation_tenants SET timezone = 'Not/A_Zone' WHERE id = 'beta'")
        )
    before = await tenant_rows(engine, "beta")
    mentioned = await mentions_of_beta(engine)  # by the seeding events' log rows
    # and any statement that tried to lock one of beta's rows would wait for this lock.
    async with engine.connect() as holder, holder.begin():
        for table in TABLES:
            key = "id" if table == "litigation_tenants" else "tenant_id"
            await holder.execute(sa.text(f"SELECT 1 FROM {table} WHERE {key} = 'beta' FOR UPDATE"))

        changed = 0
        for job in JOBS:
            result = await run(
                engine, settings, job, T0, scope=("alpha", "Europe/Berlin"), lock_timeout_ms=2000
            )
            assert {r["tenant_id"] for r in result.rows} <= {"alpha"}
            changed += result.affected
        # The control: the same check without a scope reaches beta's rows and waits.
        with pytest.raises(DBAPIError, match="lock"):
            await run(engine, settings, "litigation.sla-check", T0, lock_timeout_ms=300)

    assert changed == 4  # alpha: one SLA/overdue task, one hearing, one deadline, one snapshot
    assert await tenant_rows(engine, "beta") == before
    assert await mentions_of_beta(engine) == mentioned
    alpha = await tenant_rows(engine, "alpha")
    assert alpha["litigation_hearings"][0]["reminded_at"] == T0
    assert alpha["litigation_tasks"][0]["sla_breached_at"] == T0


async def test_events_change_only_their_own_tenants_case(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, settings, "alpha", "Europe/Berlin")
    await seed(engine, settings, "beta", "America/New_York")

    await apply(engine, settings, ev(CaseClosed, T0, tenant_id="alpha", case_id="case-1"))

    statuses = await rows(
        engine, "SELECT tenant_id, status FROM litigation_cases ORDER BY tenant_id"
    )
    assert [(r.tenant_id, r.status) for r in statuses] == [("alpha", "closed"), ("beta", "open")]
    log = await rows(
        engine,
        "SELECT entity_id, metadata FROM event_log WHERE event_type = 'litigation.case.closed'",
    )
    assert [(r.entity_id, r.metadata["from"], r.metadata["to"]) for r in log] == [
        ("alpha/case-1", "open", "closed")
    ]
    with pytest.raises(InvalidTransition) as caught:  # nothing is added to a closed case
        await apply(
            engine,
            settings,
            ev(
                HearingScheduled,
                T0,
                tenant_id="alpha",
                case_id="case-1",
                hearing_id="h9",
                starts_at=T0,
            ),
        )
    assert (caught.value.entity_id, caught.value.state) == ("alpha/case-1", "closed")
    await apply(
        engine,
        settings,
        ev(HearingScheduled, T0, tenant_id="beta", case_id="case-1", hearing_id="h9", starts_at=T0),
    )


async def test_a_case_of_an_unknown_tenant_is_retried(
    settings: Settings, engine: AsyncEngine
) -> None:
    with pytest.raises(Retryable, match="tenant 'gamma' is not known yet"):
        await apply(
            engine,
            settings,
            ev(CaseOpened, T0, tenant_id="gamma", case_id="c", title="X", owner_id="o"),
        )
    assert await rows(engine, "SELECT * FROM litigation_cases") == []


async def test_completing_a_task_twice_is_an_invalid_transition(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, settings, "alpha", "Europe/Berlin")
    with pytest.raises(InvalidTransition) as caught:
        await apply(
            engine,
            settings,
            ev(TaskCompleted, T0, tenant_id="alpha", case_id="case-1", task_id="k2"),
        )
    assert (caught.value.entity, caught.value.state) == ("task", "completed")
