"""The processing path keeps within its time budget: a consumer must poll again in time.

A handler slower than the budget is cut short and routed as a transient failure
(HandlerTimeout), whether it waits in Python or in a SQL statement; its neighbours
in the batch are applied; messages the time did not reach are REWOUND, with no effect.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC, ClaimsInbound, ClaimSubmitted
from schemas.envelope import CloudEvent
from service.config import Settings
from service.engine.failures import Incoming
from service.engine.processing import Outcome, Processor
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler
from service.workflows.claims import handlers as claims_handlers
from tests.helpers import event, scalar

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def processor(engine: AsyncEngine, settings: Settings, delays: dict[str, float]) -> Processor:
    """The claims handler, slowed down per claim: ``sql:`` waits in PostgreSQL."""

    async def handle(uow: UnitOfWork, e: CloudEvent) -> None:
        claim = e.data.claim_id  # type: ignore[attr-defined]
        delay = delays.get(claim, 0.0)
        if claim.startswith("sql:"):
            await uow.conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": delay})
        elif delay:
            await asyncio.sleep(delay)
        await claims_handlers.handle(uow, e)

    handler = Handler(
        name="claims", topic=CLAIMS_INBOUND_TOPIC, events=ClaimsInbound, handle=handle, batch=True
    )
    return Processor(engine, handler, settings)


def messages(claims: list[str]) -> list[Incoming]:
    topic = f"x.{CLAIMS_INBOUND_TOPIC}"
    return [
        Incoming(
            topic,
            0,
            offset,
            claim.encode(),
            event(ClaimSubmitted, T0, claim_id=claim, task_id="t", member_id="m").to_json(),
        )
        for offset, claim in enumerate(claims)
    ]


@pytest.mark.parametrize("slow", ["py:slow", "sql:slow"])
async def test_a_slow_handler_is_cut_short_and_retried_its_neighbours_applied(
    settings: Settings, engine: AsyncEngine, slow: str
) -> None:
    claims = [f"c{i}" for i in range(10)] + [slow] + [f"d{i}" for i in range(10)]
    proc = processor(engine, settings, {slow: 30.0})
    loop = asyncio.get_running_loop()
    final: dict[str, Outcome] = {}
    left, fetches = claims, 0
    while left:  # what is rewound is fetched again, as the worker would
        fetches += 1
        started = loop.time()
        outcomes = await proc.process(messages(left), deadline=started + 2.0)
        took = loop.time() - started
        assert took < 3.0, f"the budget was 2 s, processing took {took:.1f} s"
        final.update(
            (c, o) for c, o in zip(left, outcomes, strict=True) if o is not Outcome.REWOUND
        )
        left = [c for c, o in zip(left, outcomes, strict=True) if o is Outcome.REWOUND]
        assert fetches <= 3, "each fetch decides at least its first message"

    assert final.pop(slow) is Outcome.RETRIED
    assert set(final.values()) == {Outcome.APPLIED}
    headers = json.loads(
        await scalar(engine, "SELECT headers::text FROM outbox WHERE key = :k", k=slow)
    )
    assert headers["x-error-type"] == "HandlerTimeout"
    assert "kafka_max_poll_interval_ms" in headers["x-error-message"]
    assert await scalar(engine, "SELECT count(*) FROM claims") == 20
    assert await scalar(engine, "SELECT count(*) FROM claims WHERE id = :k", k=slow) == 0
    # The cut-short transaction left no connection behind in a bad state.
    more = await proc.process(messages(["e1", "e2"]), deadline=loop.time() + 2.0)
    assert more == [Outcome.APPLIED, Outcome.APPLIED]
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()",
        )
        == 0
    )


async def test_what_the_time_does_not_reach_is_rewound_without_effect(
    settings: Settings, engine: AsyncEngine
) -> None:
    claims = [f"c{i}" for i in range(30)]
    proc = processor(engine, settings, dict.fromkeys(claims, 0.1))  # 3 s of work, 1 s budget
    loop = asyncio.get_running_loop()
    outcomes = await proc.process(messages(claims), deadline=loop.time() + 1.0)

    applied = outcomes.index(Outcome.REWOUND)
    assert applied >= 1, "the first message had the time it needed"
    assert outcomes == [Outcome.APPLIED] * applied + [Outcome.REWOUND] * (30 - applied)
    assert await scalar(engine, "SELECT count(*) FROM claims") == applied
    inbox = await scalar(engine, "SELECT count(*) FROM processed_messages")
    assert inbox == applied, "a rewound message left an inbox row: it would never apply"

    # Fetched again with a fresh budget, the rest goes through and nothing applies twice.
    while Outcome.REWOUND in outcomes:
        left = [c for c, o in zip(claims, outcomes, strict=True) if o is Outcome.REWOUND]
        outcomes = await proc.process(messages(left), deadline=loop.time() + 1.0)
        claims = left
    assert await scalar(engine, "SELECT count(*) FROM claims") == 30


async def test_without_a_deadline_nothing_is_cut_short(
    settings: Settings, engine: AsyncEngine
) -> None:
    claims = ["a", "b", "c"]
    proc = processor(engine, settings, {"b": 0.3})
    assert await proc.process(messages(claims)) == [Outcome.APPLIED] * 3
    outcomes = await proc.process(messages(["x", "y"]), one_by_one=True)
    assert outcomes == [Outcome.APPLIED] * 2
