"""Escrow events published to the real broker reach PostgreSQL through the real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.escrow import CycleCreated, DonationConfirmed, MatchAccepted, MatchCreated
from service.app import Runtime
from service.config import Settings
from service.engine import topics
from service.engine.worker import Worker
from service.workflows.escrow.workflow import WORKFLOW
from tests.helpers import consume_all, event, publish, running, wait_for
from tests.integration.workflow_helpers import rows

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.fixture
async def worker(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Worker]:
    # Only this workflow's consumers, and a relay: retries and dead letters leave
    # through the outbox.
    async with running(settings, engine, [WORKFLOW]) as w:
        yield w


async def test_escrow_events_reach_the_database_and_timers_run_on_event_time(
    settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    late_accept = event(MatchAccepted, T0 + timedelta(hours=25), match_id="ma-1")
    await publish(
        settings,
        "escrow.events",
        [
            event(
                CycleCreated,
                T0,
                cycle_id="cy-1",
                user_id="r1",
                amount="40.00",
                due_date="2026-12-01",
            ),
            event(
                DonationConfirmed,
                T0,
                escrow_id="e-1",
                donor_id="d1",
                recipient_id="r1",
                amount="40.00",
                cycle_id="cy-1",
            ),
            event(MatchCreated, T0, match_id="ma-1", donor_id="d1", recipient_id="r1"),
            late_accept,  # 25 h after creation by its own time: the match had expired
        ],
    )

    async def escrow_held() -> list[object]:
        return await rows(engine, "SELECT * FROM escrows WHERE id = 'e-1'")

    [escrow] = await wait_for(escrow_held, what="escrow e-1")
    assert escrow.status == "held"
    assert escrow.release_at == T0 + timedelta(hours=48)  # the event's time, not ours
    dead = await consume_all(settings, topics.dlq(settings, "escrow.events"), 1)
    assert len(dead) == 1 and dead[0].value == late_accept.to_json()
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["x-error-class"] == "invalid_transition"
    assert (headers["x-entity"], headers["x-state"]) == ("match", "pending")
    [match] = await rows(engine, "SELECT status FROM escrow_matches WHERE id = 'ma-1'")
    assert match.status == "pending"

    outcome = await Runtime(settings, engine).run_job(
        "escrow.release", now=T0 + timedelta(hours=48)
    )
    assert outcome.result is not None and outcome.result.affected == 1
    [account] = await rows(engine, "SELECT * FROM escrow_accounts WHERE user_id = 'r1'")
    assert (account.receivable, account.fiat) == (Decimal("0.00"), Decimal("40.00"))
    [cycle] = await rows(engine, "SELECT status FROM escrow_cycles WHERE id = 'cy-1'")
    assert cycle.status == "obligated"
