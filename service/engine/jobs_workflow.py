"""The engine's own workflow: ticks and job commands into the run queue, maintenance jobs.

Ticks and commands take the normal processing path (inbox, retry tiers, dead
letters); their handlers only queue a run and wake the executors, so a slow job
never holds a partition.
"""

from __future__ import annotations

from schemas.envelope import CloudEvent
from schemas.jobs import (
    JOBS_COMMANDS_TOPIC,
    JOBS_TICKS_TOPIC,
    JobRetryRequested,
    JobsCommand,
    JobTick,
)
from schemas.notifications import NOTIFICATIONS_TOPIC
from service.engine import maintenance, runqueue
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler, Workflow
from service.errors import NonRetryable


async def handle_tick(uow: UnitOfWork, event: CloudEvent) -> None:
    """Queue the slot's run; a second tick for the same slot queues nothing."""
    if not isinstance(event, JobTick):
        raise NonRetryable(f"jobs.ticks carries job.tick events, not {event.type!r}")
    tick = event.data
    await runqueue.enqueue(
        uow.conn,
        job=tick.job,
        scope=tick.scope,
        slot=tick.slot,
        timezone=tick.timezone,
        trigger="scheduled",
        correlation_id=event.id,
    )


async def handle_command(uow: UnitOfWork, event: CloudEvent) -> None:
    """Queue the next attempt of a failed run (a stale or repeated command does nothing)."""
    if not isinstance(event, JobRetryRequested):
        raise NonRetryable(f"unknown jobs.commands event {event.type!r}")
    await runqueue.requeue(uow.conn, event.data.run_id, event.data.attempt)


WORKFLOW = Workflow(
    name="jobs",
    tables_module="service.db.tables",
    handlers=(
        Handler(name="jobs.ticks", topic=JOBS_TICKS_TOPIC, events=JobTick, handle=handle_tick),
        Handler(
            name="jobs.commands",
            topic=JOBS_COMMANDS_TOPIC,
            events=JobsCommand,
            handle=handle_command,
        ),
    ),
    jobs=maintenance.JOBS,
    outbound_topics=(NOTIFICATIONS_TOPIC,),
)
