"""The checker itself: a clean run passes, and each kind of damage is reported as such.

Without this, a checker that always says "ok" would make every scenario pass.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from tests.faults.checker import check, settled
from tests.faults.harness import publish_stream, until
from tests.faults.stream import FAIL_SOURCE, claim_stream
from tests.helpers import running

pytestmark = pytest.mark.integration


async def _execute(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


async def test_the_checker_sees_loss_duplication_and_strangers(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.with_overrides(fault_fail_source=FAIL_SOURCE)
    stream = claim_stream(300, seed=3, malformed=0.02, failing=0.02)
    async with running(settings, engine):
        await publish_stream(settings, stream.entries)

        async def done() -> bool:
            return await settled(engine, settings, stream)

        await until(done, timeout=120, what="the stream settled")
    clean = await check(engine, settings, stream)
    assert clean.ok, str(clean)
    assert clean.figures["dead_letters"] == len(stream.bad) > 0

    claim, (_, steps) = next(iter(stream.expected.items()))
    other = list(stream.expected)[1]
    event_id = next(e for e, c in stream.valid.items() if c == other)
    await _execute(
        engine,
        f"UPDATE claims SET version = version + 1 WHERE id = '{claim}'",  # applied twice
        f"DELETE FROM event_log WHERE causation_id = '{event_id}'",  # an effect lost
        "INSERT INTO claims (id, task_id, member_id, status, submitted_at, updated_at, version)"
        " VALUES ('stranger', 't', 'm', 'submitted', now(), now(), 1)",  # from nowhere
        "DELETE FROM dead_letters WHERE id = (SELECT min(id) FROM dead_letters)",  # lost DLQ row
    )
    damaged = await check(engine, settings, stream)
    assert any(claim in d and f"of {steps}" in d for d in damaged.duplicated), damaged
    assert any(event_id in lost and "event_log" in lost for lost in damaged.lost), damaged
    assert any("not dead-lettered" in lost for lost in damaged.lost), damaged
    assert any("holds" in lost for lost in damaged.lost), damaged  # topic vs index
    assert damaged.unexpected == ["claim stranger not in the stream"], damaged
