"""A failed attempt: retry it through the ``jobs.commands`` retry tiers, or give up loudly.

Retrying writes a ``job.retry_requested`` command to the outbox, addressed to the
retry tier of the attempt and due (``x-due-at``) after the job's delay; the worker's
tier consumer waits until then and the command handler queues the run again. After
the last attempt the run is ``failed``, a ``job.failed`` notification goes out, and
a job with ``pause_on_failure`` is paused. All of it in the caller's transaction,
guarded so that only one of the runner and the stalled-run sweep records a failure.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.jobs import JOBS_COMMANDS_TOPIC, JobRetryRequested, JobRetryRequestedData
from service.config import Settings
from service.db.tables import job_pauses, job_runs
from service.engine import records, topics
from service.engine.joblocks import hand_over
from service.engine.jobs import retry_delays
from service.engine.metrics import JOB_RUNS
from service.engine.retry import ErrorClass, RetryDecision, decide
from service.engine.workflow import Job

if TYPE_CHECKING:
    from service.engine.runner import Run


def _retry_command(
    settings: Settings, run: Run, tier: int, due: float, error: str
) -> dict[str, Any]:
    event = JobRetryRequested(
        # Fresh per attempt, so the inbox does not take attempt 3 for attempt 2.
        id=records.derived_id("retry", run.id, run.attempt),
        source=settings.source,
        time=datetime.now(UTC),
        subject=run.job,
        correlationid=run.correlation_id,
        data=JobRetryRequestedData(
            run_id=run.id,
            job=run.job,
            scope=run.scope or None,
            slot=run.slot,
            attempt=run.attempt + 1,
        ),
    )
    tiers = len(settings.retry_delays_s)
    headers = {
        "x-original-topic": settings.topic(JOBS_COMMANDS_TOPIC),
        "x-consumer-group": settings.group_id,
        "x-attempt": str(run.attempt),
        "x-due-at": str(due),
        "x-error-class": ErrorClass.RETRYABLE.value,
        "x-error-message": error[:500],
    }
    # A job may allow more attempts than there are tiers: the last tier takes the
    # rest, and x-due-at still holds each message back for the job's own delay.
    topic = topics.retry(settings, JOBS_COMMANDS_TOPIC, min(tier, tiers))
    return records.outbox_row(topic, event, headers)


def _facts(run: Run, error: str) -> dict[str, Any]:
    return {
        "job": run.job,
        "scope": run.scope or None,
        "slot": run.slot.isoformat(),
        "run_id": run.id,
        "attempt": run.attempt,
        "trigger": run.trigger,
        "actor": run.actor,
        "error": error,
    }


async def record_failure(
    conn: AsyncConnection,
    job: Job | None,
    run: Run,
    settings: Settings,
    *,
    error: str,
    retry: bool,
    duration_ms: int | None = None,
) -> str:
    """Record attempt ``run.attempt`` as failed; return retrying, failed or lost."""
    decision = None
    if retry and job is not None:
        decision = decide(
            run.attempt, ErrorClass.RETRYABLE, retry_delays(job, settings), settings.retry_jitter
        )
    due = time.time() + decision.delay_s if isinstance(decision, RetryDecision) else None
    marked = await conn.execute(
        job_runs.update()
        .where(
            job_runs.c.id == run.id,
            job_runs.c.status == "running",
            job_runs.c.attempt == run.attempt,
        )
        .values(
            status="failed",
            error=error[:2000],
            finished_at=sa.func.now(),
            duration_ms=duration_ms,
            lock_pid=None,
            next_attempt_at=datetime.fromtimestamp(due, UTC) if due is not None else None,
        )
        .returning(job_runs.c.id)
    )
    if marked.first() is None:
        return "lost"
    await hand_over(conn, run.job, run.scope)  # a stalled run's lock is already free
    facts = _facts(run, error)

    def logged(event_type: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return records.log_row(
            entity_type="job_run",
            entity_id=str(run.id),
            event_type=event_type,
            actor=run.actor,
            metadata=metadata,
            correlation_id=run.correlation_id,
        )

    if isinstance(decision, RetryDecision) and due is not None:
        logs = [logged("job.attempt_failed", {**facts, "retry_in_s": round(decision.delay_s, 3)})]
        await records.write(conn, logs, [_retry_command(settings, run, decision.tier, due, error)])
        JOB_RUNS.labels(job=run.job, status="retrying").inc()
        return "retrying"
    logs = [logged("job.failed", facts)]
    alert = records.alert(
        settings,
        event_id=records.derived_id("failed", run.id, run.attempt),
        template="job.failed",
        subject=run.job,
        data=facts,
    )
    if job is not None and job.pause_on_failure and run.trigger == "scheduled":
        paused = await conn.execute(
            pg_insert(job_pauses)
            .values(job=run.job, actor="system", reason=f"run {run.id} failed: {error}"[:2000])
            .on_conflict_do_nothing()
            .returning(job_pauses.c.job)
        )
        if paused.first() is not None:
            logs.append(
                records.log_row(
                    entity_type="job",
                    entity_id=run.job,
                    event_type="job.paused",
                    actor="system",
                    metadata={"reason": "pause_on_failure", "run_id": run.id},
                )
            )
    await records.write(conn, logs, [alert])
    JOB_RUNS.labels(job=run.job, status="failed").inc()
    return "failed"
