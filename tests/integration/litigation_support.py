"""Shared steps for the litigation tests: apply events through the handler, run a job."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import CloudEvent
from service.config import Settings
from service.engine.jobs import find_job
from service.engine.uow import Cause, UnitOfWork
from service.engine.workflow import JobContext, JobResult
from service.workflows.litigation import handlers
from service.workflows.litigation.workflow import WORKFLOW


def ev(cls: type[CloudEvent], time: datetime, **data: Any) -> CloudEvent:
    return cls.model_validate(
        {"id": str(uuid.uuid4()), "source": "/tests", "time": time, "data": data}
    )


async def apply(engine: AsyncEngine, settings: Settings, *events: CloudEvent) -> None:
    """Each event in its own unit of work, as the worker would."""
    for event in events:
        async with UnitOfWork(engine, settings.topic_prefix, settings) as uow:
            uow.cause = Cause(event.id, event.id, event.source)
            await handlers.handle(uow, event)
            await uow.commit()


async def run(
    engine: AsyncEngine,
    settings: Settings,
    job_name: str,
    now: datetime,
    *,
    scope: tuple[str, str] | None = None,
    lock_timeout_ms: int | None = None,
    **params: Any,
) -> JobResult:
    """Run a litigation job for one slot (and one tenant scope) in its own transaction."""
    job = find_job(list(WORKFLOW.jobs), job_name)
    ctx = JobContext(
        now=now,
        trigger="scheduled",
        actor=None,
        params=job.params.model_validate(params),
        dry_run=False,
        settings=settings,
        scope=scope[0] if scope else None,
        timezone=scope[1] if scope else "UTC",
    )
    async with engine.begin() as conn:
        if lock_timeout_ms is not None:
            await conn.execute(sa.text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        return await job.run(conn, ctx)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql), params))
