"""Batch mode leaves exactly the state one-message-per-transaction mode leaves.

Hypothesis generates streams of claim events with duplicates, malformed messages,
invalid transitions and messages whose handler always fails transiently; the same
stream goes through the processing path once message by message and once in
random batches, each into its own real database, and everything they wrote must
match: claims, inbox, event log, outbox (retry and dead-letter forwards) and
parked keys.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schemas.claims import CLAIMS_INBOUND_TOPIC, ClaimsInbound
from schemas.envelope import CloudEvent
from service.config import Settings
from service.engine.failures import Incoming
from service.engine.processing import Processor
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler
from service.workflows.claims import handlers
from tests.conftest import TEMPLATE, _admin_execute, _with_db

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
CLAIMS = ["c0", "c1", "c2"]
REVIEWERS = ["r0", "r1"]
TABLES = (
    "claims, members, tasks, processed_messages, event_log, outbox, parked_keys, parked_messages"
)
KEPT_HEADERS = (
    "x-error-class",
    "x-error-type",
    "x-attempt",
    "x-original-offset",
    "x-entity-id",
    "x-state",
)


def _payload(kind: str, claim: str, reviewer: str) -> dict[str, Any]:
    data: dict[str, Any] = {"claim_id": claim}
    if kind == "claim.submitted":
        data |= {"task_id": "t1", "member_id": "m1"}
    elif kind == "claim.resubmitted":
        pass
    else:
        data["reviewer_id"] = reviewer
        if kind == "claim.rejected":
            data["reason"] = "no"
        if kind == "claim.revision_requested":
            data["note"] = "more"
    return data


KINDS = [
    "claim.submitted",
    "claim.review_started",
    "claim.approved",
    "claim.rejected",
    "claim.revision_requested",
    "claim.resubmitted",
    "claim.review_released",
]


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Incoming], set[str], list[int]]:
    """(messages, ids whose handler always fails, batch sizes)."""
    msgs: list[Incoming] = []
    failing: set[str] = set()
    for n in range(draw(st.integers(1, 40))):
        choice = draw(st.sampled_from(["event"] * 6 + ["duplicate", "poison", "failing"]))
        claim = draw(st.sampled_from(CLAIMS))
        if choice == "duplicate" and msgs:
            chosen = draw(st.sampled_from(msgs))  # a redelivery: same bytes, same id
            msgs.append(Incoming(CLAIMS_INBOUND_TOPIC, 0, n, chosen.key, chosen.value, {}))
            continue
        if choice == "poison":
            body = draw(st.sampled_from([b"{not json", b'{"type": "claim.teleported"}', b"[]"]))
            msgs.append(Incoming(CLAIMS_INBOUND_TOPIC, 0, n, claim.encode(), body, {}))
            continue
        kind = draw(st.sampled_from(KINDS))
        event_id = str(uuid.UUID(int=n + 1))
        doc = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/hypothesis",
            "type": kind,
            "time": (T0 + timedelta(minutes=n)).isoformat(),
            "data": _payload(kind, claim, draw(st.sampled_from(REVIEWERS))),
        }
        if choice == "failing":
            failing.add(event_id)
        msgs.append(
            Incoming(CLAIMS_INBOUND_TOPIC, 0, n, claim.encode(), json.dumps(doc).encode(), {})
        )
    sizes = draw(st.lists(st.integers(1, 12), min_size=1, max_size=20))
    return msgs, failing, sizes


def _processor(engine: AsyncEngine, settings: Settings, failing: set[str]) -> Processor:
    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        if event.id in failing:
            raise ConnectionError("the dependency is down")
        await handlers.handle(uow, event)

    async def handle_batch(uow: UnitOfWork, events: Any) -> None:
        for e in events:
            if e.id in failing:
                error = ConnectionError("the dependency is down")
                if uuid.UUID(e.id).int % 2:  # half name the message (the batch splits there)
                    error.event_id = e.id  # type: ignore[attr-defined]
                raise error  # the other half leave the engine to halve the batch
        await handlers.handle_batch(uow, events)

    handler = Handler(
        "claims", CLAIMS_INBOUND_TOPIC, ClaimsInbound, handle, batch=True, handle_batch=handle_batch
    )
    return Processor(engine, handler, settings)


async def _snapshot(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:

        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await conn.execute(sa.text(sql))]

        outbox = [
            (r[0], r[1], bytes(r[2]), tuple((h, r[3].get(h)) for h in KEPT_HEADERS))
            for r in await rows("SELECT topic, key, value, headers FROM outbox ORDER BY id")
        ]
        return {
            "claims": await rows("SELECT * FROM claims ORDER BY id"),
            "inbox": await rows("SELECT consumer, message_id FROM processed_messages ORDER BY 2"),
            "log": await rows(
                "SELECT entity_type, entity_id, event_type, occurred_at, metadata::text, actor, "
                "causation_id FROM event_log ORDER BY id"
            ),
            "outbox": outbox,
            "parked_keys": await rows(
                "SELECT consumer, topic, key, head_id FROM parked_keys ORDER BY key"
            ),
            "parked": await rows("SELECT key, message_id, value FROM parked_messages ORDER BY id"),
        }


@pytest.fixture
async def twin(stack: tuple[str, str], template_url: str) -> AsyncIterator[AsyncEngine]:
    name = f"jobstream_twin_{uuid.uuid4().hex[:8]}"
    await _admin_execute(stack[0], f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    engine = create_async_engine(_with_db(stack[0], name))
    yield engine
    await engine.dispose()
    await _admin_execute(stack[0], f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@hsettings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=streams())
async def test_batches_and_single_messages_leave_the_same_state(
    settings: Settings,
    engine: AsyncEngine,
    twin: AsyncEngine,
    case: tuple[list[Incoming], set[str], list[int]],
) -> None:
    msgs, failing, sizes = case
    for eng in (engine, twin):
        async with eng.begin() as conn:
            await conn.execute(sa.text(f"TRUNCATE {TABLES}"))

    single = _processor(engine, settings, failing)
    for msg in msgs:
        await single.process([msg])

    batched = _processor(twin, settings, failing)
    start, i = 0, 0
    while start < len(msgs):
        size = sizes[i % len(sizes)]
        await batched.process(msgs[start : start + size])
        start, i = start + size, i + 1

    assert await _snapshot(twin) == await _snapshot(engine)
