"""The job executor that runs in every worker: claim due runs, run them, recover stalls.

Woken by ``LISTEN`` when a tick, a retry or a finished run changes the queue, and
by polling besides, so a lost notification only delays a run. Each claimed run
keeps its own connection, which holds the job's lock until the run is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.engine import job_failures, runqueue
from service.engine.joblocks import NOTIFY_CHANNEL, release
from service.engine.metrics import JOB_RUNS, JOB_START_LATENESS
from service.engine.runner import Run, execute
from service.engine.timesource import wait_any
from service.engine.workflow import Job

log = logging.getLogger("jobstream.executor")

STALLED = "stalled: its runner died or hung past the timeout"


class JobExecutor:
    """Runs queued runs of ``jobs``, up to ``job_concurrency`` at once, in this process."""

    def __init__(self, engine: AsyncEngine, jobs: list[Job], settings: Settings) -> None:
        self.engine = engine
        self.jobs = {job.name: job for job in jobs}
        self.settings = settings
        self.wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: AsyncConnection | None = None
        self._driver: Any = None

    async def run(self, stop: asyncio.Event, stop_grace_s: float = 5.0) -> None:
        """Run until ``stop``; then give runs in flight ``stop_grace_s`` to finish.

        A run cut short stays ``running`` with its lock gone, so the stalled-run
        sweep of any worker retries it.
        """
        next_sweep = 0.0
        try:
            while not stop.is_set():
                await self._ensure_listener()
                try:
                    await self.claim_due()
                    if time.monotonic() >= next_sweep:
                        await self.recover_stalled()
                        next_sweep = time.monotonic() + self.settings.job_stall_check_s
                except Exception:
                    log.exception("executor pass failed", extra={"action": "executor_error"})
                await wait_any(self.wake, stop, limit_s=self.settings.job_poll_s)
                self.wake.clear()
        finally:
            await self._close_listener()
            if self._tasks:
                _, late = await asyncio.wait(self._tasks, timeout=stop_grace_s)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)

    async def claim_due(self) -> int:
        """Start every due run this worker has room for; return how many started."""
        started = 0
        while len(self._tasks) < self.settings.job_concurrency:
            conn = await self.engine.connect()
            try:
                async with conn.begin():
                    claim = await runqueue.claim(conn, self.jobs, self.settings.job_poll_s)
            except BaseException:
                await conn.invalidate()  # it may hold the lock of a run it could not start
                await conn.close()
                raise
            if claim.run is None or claim.job is None:
                await conn.close()
                if not claim.found:
                    break
                continue
            task = asyncio.create_task(self._execute(conn, claim.job, claim.run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _execute(self, conn: AsyncConnection, job: Job, run: Run) -> None:
        try:
            if run.trigger == "scheduled":
                lateness = (datetime.now(UTC) - run.slot).total_seconds()
                JOB_START_LATENESS.labels(job=job.name).observe(max(lateness, 0.0))
            await execute(self.engine, conn, job, run, self.settings, retry=True)
        except Exception:
            log.exception("run crashed", extra={"action": "run_crashed", "run_id": run.id})
        finally:
            await release(conn, job.name, run.scope, locked=True)
            self.wake.set()  # its lock is free: a queued run may now go

    async def recover_stalled(self) -> int:
        """Fail (and retry by policy) runs left ``running`` by a dead or hung runner."""
        async with self.engine.begin() as conn:
            runs = await runqueue.stalled(conn)
            for run in runs:
                status = await job_failures.record_failure(
                    conn, self.jobs.get(run.job), run, self.settings, error=STALLED, retry=True
                )
                JOB_RUNS.labels(job=run.job, status="stalled").inc()
                log.warning(
                    "stalled run recovered",
                    extra={"action": "stalled", "run_id": run.id, "job": run.job, "now": status},
                )
        return len(runs)

    async def _ensure_listener(self) -> None:
        if self._driver is not None and not self._driver.is_closed():
            return
        await self._close_listener()
        try:
            conn = await self.engine.connect()
            self._listener = conn
            self._driver = (await conn.get_raw_connection()).driver_connection
            await self._driver.add_listener(NOTIFY_CHANNEL, self._notified)
        except Exception:
            log.warning("LISTEN failed; polling only", extra={"action": "listen_failed"})

    def _notified(self, *_: object) -> None:
        self.wake.set()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                # Discard it: a pooled connection would keep listening for nobody.
                await self._listener.invalidate()
                await self._listener.close()
            self._listener = self._driver = None
