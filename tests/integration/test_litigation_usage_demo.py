"""The demo data goes through the worker's processing path and seeds tenants and organizations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine.processing import Incoming, Outcome, Processor
from service.workflows.litigation.workflow import WORKFLOW as LITIGATION
from service.workflows.usage.workflow import WORKFLOW as USAGE
from tests.helpers import cli
from tests.integration.litigation_support import run

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


async def test_demo_events_seed_tenants_and_organizations(
    settings: Settings, engine: AsyncEngine
) -> None:
    handlers = [h for wf in (LITIGATION, USAGE) for h in wf.handlers]
    processors = {h.topic: Processor(engine, h, settings) for h in handlers}
    events = LITIGATION.demo_events(NOW) + USAGE.demo_events(NOW)

    outcomes = [
        outcome
        for offset, (topic, event) in enumerate(events)
        for outcome in await processors[topic].process(
            [Incoming(settings.topic(topic), 0, offset, event.key.encode(), event.to_json())]
        )
    ]

    assert set(outcomes) == {Outcome.APPLIED}  # nothing retried or dead-lettered
    async with engine.connect() as conn:
        assert (
            await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE value IS NOT NULL"))
        ).scalar() == 0
    async with engine.connect() as conn:
        tenants = (await conn.execute(sa.text("SELECT id, timezone FROM litigation_tenants"))).all()
        flags = (
            await conn.execute(sa.text("SELECT organization_id, enabled FROM usage_feature_flags"))
        ).all()
        warned = (
            await conn.execute(
                sa.text("SELECT organization_id FROM usage_counters WHERE warned_at IS NOT NULL")
            )
        ).all()
    assert {t.timezone for t in tenants} == {"America/New_York", "Europe/Berlin", "Asia/Tokyo"}
    assert dict(flags) == {"org-acme": False, "org-globex": True, "org-initech": True}
    assert {w.organization_id for w in warned} == {"org-acme", "org-globex"}
    breaches = await run(engine, settings, "litigation.sla-check", NOW)
    assert {(r["task_id"], r["sla_breached"], r["overdue"]) for r in breaches.rows} == {
        ("task-1", True, False),
        ("task-2", True, True),
    }
    assert breaches.affected == 6  # two tasks in each of the three tenants


async def test_their_jobs_are_listed(settings: Settings) -> None:
    code, output = await cli(settings, "jobs", "list")
    assert code == 0, output
    for job in (*LITIGATION.jobs, *USAGE.jobs):
        assert job.name in output
