"""Challenge events published to the real broker reach PostgreSQL through the real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.challenges import (
    ChallengeCreated,
    ChallengeMemberJoined,
    ChallengeProgressRecorded,
    NotificationCreated,
    UserUpserted,
)
from service.config import Settings
from service.engine.worker import Worker
from service.workflows.challenges.workflow import WORKFLOW
from tests.helpers import event, publish, running, wait_for
from tests.integration.workflow_helpers import rows

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
async def worker(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Worker]:
    # Only this workflow's consumers, and a relay: retries and dead letters leave
    # through the outbox.
    async with running(settings, engine, [WORKFLOW]) as w:
        yield w


async def test_challenge_events_reach_the_database(
    settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    ids = {"challenge_id": "ch-1", "user_id": "u1"}
    await publish(
        settings,
        "challenges.events",
        [
            event(UserUpserted, T0, user_id="u1", name="Lena", timezone="Europe/Berlin"),
            event(UserUpserted, T0 - H, user_id="u1", name="Old name", timezone="UTC"),  # stale
            event(
                ChallengeCreated,
                T0,
                challenge_id="ch-1",
                title="Walk",
                starts_at=T0,
                ends_at=T0 + timedelta(days=30),
            ),
            event(ChallengeMemberJoined, T0 + H, **ids),
            event(ChallengeProgressRecorded, T0 + 3 * H, completion_rate="0.4000", **ids),
            event(ChallengeProgressRecorded, T0 + 2 * H, completion_rate="0.1000", **ids),  # older
            event(NotificationCreated, T0 + 4 * H, notification_id="n-1", user_id="u1", title="Hi"),
        ],
    )

    async def notification() -> list[Any]:
        return await rows(engine, "SELECT * FROM user_notifications")

    [note] = await wait_for(notification, what="notification n-1")
    assert note.created_at == T0 + 4 * H  # the event's time

    async def all_handled() -> bool:
        found = await rows(
            engine,
            "SELECT count(*) AS n FROM event_log WHERE event_type IN "
            "('challenge.progress_recorded', 'user.upserted')",
        )
        return bool(found[0].n == 4)

    await wait_for(all_handled, what="both profiles and both progress reports handled")
    [member] = await rows(engine, "SELECT * FROM challenge_members")
    assert (member.completion_rate, member.progress_at) == (Decimal("0.4000"), T0 + 3 * H)
    [user] = await rows(engine, "SELECT * FROM challenge_users")
    assert (user.name, user.timezone) == ("Lena", "Europe/Berlin")
    [challenge] = await rows(engine, "SELECT * FROM challenges")
    assert challenge.status == "active" and challenge.created_at == T0
