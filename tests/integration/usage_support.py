"""Shared steps for the usage tests: build events, consume a batch as the engine does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import CloudEvent
from schemas.usage import UsageRecorded
from service.config import Settings
from service.engine.uow import UnitOfWork
from service.engine.workflow import JobContext, NoParams
from service.workflows.usage import audit, handlers, jobs

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def ev(cls: type[CloudEvent], time: datetime, id: str | None = None, **data: Any) -> CloudEvent:
    return cls.model_validate(
        {"id": id or str(uuid.uuid4()), "source": "/t", "time": time, "data": data}
    )


def use(org: str, metric: str, at: datetime, quantity: int = 1) -> CloudEvent:
    return ev(UsageRecorded, at, organization_id=org, metric=metric, quantity=quantity)


async def consume(
    engine: AsyncEngine, settings: Settings, batch: Sequence[CloudEvent], consumer: str = "usage"
) -> None:
    """One batch as the engine runs it: inbox first, then handle_batch, one transaction."""
    async with UnitOfWork(engine, settings.topic_prefix, settings) as uow:
        new = await uow.claim_messages(consumer, [e.id for e in batch])
        fresh = [e for e in batch if e.id in new]
        if consumer == "usage":
            await handlers.handle_batch(uow, fresh)
        else:
            await audit.handle_batch(uow, fresh)
        await uow.commit()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql), params))


async def counters(engine: AsyncEngine) -> dict[tuple[str, str, datetime], int]:
    found = await rows(
        engine, "SELECT organization_id, metric, period_start, value FROM usage_counters"
    )
    return {(r.organization_id, r.metric, r.period_start): r.value for r in found}


def hour_of(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def flag(engine: AsyncEngine, name: str) -> tuple[bool, str | None]:
    found = await rows(
        engine, "SELECT enabled, reason FROM usage_feature_flags WHERE flag = :f", f=name
    )
    return found[0].enabled, found[0].reason


async def rollover(engine: AsyncEngine, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    ctx = JobContext(now, "scheduled", None, NoParams(), False, settings)
    async with engine.begin() as conn:
        return (await jobs.rollover(conn, ctx)).rows
