"""Helpers for workflow job tests: apply events through handlers, run a job function,
read rows, and check that event_log and outbox match the changed rows one to one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import CloudEvent
from schemas.registry import ALL_EVENTS
from service.config import Settings
from service.engine.uow import UnitOfWork
from service.engine.workflow import HandleFn, JobContext, JobFn, JobResult, NoParams


async def apply(engine: AsyncEngine, handle: HandleFn, events: Iterable[CloudEvent]) -> None:
    """Run each event through ``handle`` in its own unit of work, as the worker does."""
    for event in events:
        async with UnitOfWork(engine) as uow:
            await handle(uow, event)
            await uow.commit()


def context(
    settings: Settings,
    now: datetime,
    params: BaseModel | None = None,
    *,
    dry_run: bool = False,
    **kw: Any,
) -> JobContext:
    return JobContext(
        now=now,
        trigger="scheduled",
        actor=None,
        params=params or NoParams(),
        dry_run=dry_run,
        settings=settings,
        **kw,
    )


async def run(engine: AsyncEngine, job: JobFn, ctx: JobContext) -> JobResult:
    """Call the job function in one committed transaction (no job_runs bookkeeping)."""
    async with engine.begin() as conn:
        return await job(conn, ctx)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[sa.Row[Any]]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql), params))


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar_one()


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    """(event_log rows, outbox rows): to show that a second run wrote nothing."""
    log = await scalar(engine, "SELECT count(*) FROM event_log")
    out = await scalar(engine, "SELECT count(*) FROM outbox")
    return int(log), int(out)


async def logged(engine: AsyncEngine, event_type: str) -> list[sa.Row[Any]]:
    return await rows(
        engine, "SELECT * FROM event_log WHERE event_type = :t ORDER BY entity_id", t=event_type
    )


async def published(engine: AsyncEngine, event_type: str) -> list[sa.Row[Any]]:
    return await rows(
        engine, "SELECT * FROM outbox WHERE payload->>'type' = :t ORDER BY key", t=event_type
    )


async def notifications(engine: AsyncEngine, template: str) -> list[dict[str, Any]]:
    """The notification.requested payloads with ``template``, validated by the schema."""
    found = await rows(
        engine,
        "SELECT payload FROM outbox WHERE payload->>'type' = 'notification.requested' "
        "AND payload->'data'->>'template' = :t",
        t=template,
    )
    for row in found:
        ALL_EVENTS["notification.requested"].model_validate(row.payload)
    return [row.payload for row in found]


async def assert_one_to_one(
    engine: AsyncEngine, event_type: str, entity_ids: Iterable[str], topic: str | None = None
) -> list[dict[str, Any]]:
    """One event_log row and one outbox row per changed entity, sharing the event id.

    Returns the outbound payloads, each validated against its pydantic contract.
    """
    expected = sorted(entity_ids)
    log = await logged(engine, event_type)
    out = await published(engine, event_type)
    assert [r.entity_id for r in log] == expected
    assert sorted(r.key for r in out) == expected
    assert {r.event_id for r in log} == {r.event_id for r in out}
    if topic is not None:
        assert {r.topic for r in out} <= {topic}
    for row in out:
        ALL_EVENTS[event_type].model_validate(row.payload)
    return [row.payload for row in out]
