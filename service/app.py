"""Composition root: builds the engine, worker, clock, relay and API from Settings.

Nothing is created at import time; tests build their own ``Runtime`` with their
own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.jobs import JOBS_TICKS_TOPIC
from schemas.notifications import NOTIFICATIONS_TOPIC
from service.config import Settings
from service.db.migrate import ensure_at_head
from service.db.session import create_engine
from service.engine import job_admin, jobs_workflow
from service.engine.clock import Clock
from service.engine.executor import JobExecutor
from service.engine.jobs import RunOutcome, configure_jobs, find_job
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.outbox import Relay
from service.engine.runner import run_inline
from service.engine.worker import Worker
from service.engine.workflow import Job, Workflow
from service.workflows import installed_workflows

log = logging.getLogger("jobstream.app")

ROLES = ("worker", "clock", "relay", "api")


def configured_jobs(settings: Settings, workflows: list[Workflow] | None = None) -> list[Job]:
    """The engine's jobs and the workflows' (default: installed), overrides applied."""
    domain = installed_workflows() if workflows is None else workflows
    declared = (j for wf in (jobs_workflow.WORKFLOW, *domain) for j in wf.jobs)
    return configure_jobs(declared, settings)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    workflows: list[Workflow] = field(default_factory=installed_workflows)

    @property
    def all_workflows(self) -> list[Workflow]:
        """The engine's own (ticks, job commands, maintenance jobs) and the domain ones."""
        return [jobs_workflow.WORKFLOW, *self.workflows]

    @cached_property
    def jobs(self) -> list[Job]:
        """Every job with the deployment's overrides applied; raises ConfigError if bad."""
        return configured_jobs(self.settings, self.workflows)

    def outbound_topics(self) -> list[str]:
        """Every topic the relay publishes events to (retry and DLQ topics are the worker's)."""
        names = {t for wf in self.all_workflows for t in wf.outbound_topics}
        return sorted(self.settings.topic(t) for t in names | {NOTIFICATIONS_TOPIC})

    async def run_job(
        self,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        dry_run: bool = False,
        actor: str | None = None,
        trigger: str = "manual",
        now: datetime | None = None,
        scope: str | None = None,
        timezone: str | None = None,
    ) -> RunOutcome:
        """Run a job here by name with validated parameters (manual trigger by default).

        ``now`` is the slot (default: this moment). The run takes the job's lock and
        is recorded in job_runs like any other; pydantic's ValidationError names a
        bad parameter, JobInputError a scope the job does not have.
        """
        job = find_job(self.jobs, name)
        if timezone is None and (scope or job.scopes):
            timezone = await job_admin.scope_timezone(self.engine, job, scope)
        return await run_inline(
            self.engine,
            job,
            self.settings,
            slot=now or datetime.now(UTC),
            trigger=trigger,
            actor=actor,
            params=job.params.model_validate(params or {}),
            dry_run=dry_run,
            scope=scope,
            timezone=timezone,
        )


@contextlib.asynccontextmanager
async def runtime(settings: Settings, *, check_schema: bool = True) -> AsyncIterator[Runtime]:
    engine = create_engine(settings)
    try:
        if check_schema:
            await ensure_at_head(engine)
        rt = Runtime(settings, engine)
        _ = rt.jobs  # a bad schedule override stops the start here, naming the job
        yield rt
    finally:
        await engine.dispose()


async def serve(rt: Runtime, roles: set[str], stop: asyncio.Event) -> None:
    """Run the given roles in this process until ``stop`` is set."""
    settings = rt.settings
    tasks: list[asyncio.Task[None]] = []
    worker: Worker | None = None
    publishers: list[KafkaPublisher] = []
    server: Any = None
    exporter: Any = None
    try:
        if settings.metrics_port is not None and "api" not in roles:
            from prometheus_client import start_http_server

            from service.engine.metrics import REGISTRY

            exporter, _ = start_http_server(
                settings.metrics_port, addr=settings.api_host, registry=REGISTRY
            )
        if "clock" in roles:
            await ensure_topics(settings, [settings.topic(JOBS_TICKS_TOPIC)])
            publishers.append(ticks := KafkaPublisher(settings))
            await ticks.start()
            tasks.append(asyncio.create_task(Clock(rt.engine, rt.jobs, settings, ticks).run(stop)))
        if "relay" in roles:
            await ensure_topics(settings, rt.outbound_topics())
            publishers.append(publisher := KafkaPublisher(settings))
            await publisher.start()
            tasks.append(asyncio.create_task(Relay(rt.engine, publisher, settings).run(stop)))
        if "api" in roles:
            import uvicorn

            from service.tokens import ensure_token

            if settings.admin_token is not None:
                token = settings.admin_token.get_secret_value()
                await ensure_token(rt.engine, "bootstrap-admin", "admin", token)

            from service.api.app import create_api

            config = uvicorn.Config(
                create_api(rt),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
                lifespan="on",
            )
            server = uvicorn.Server(config)
            # The process owns signals (stop event); uvicorn must not capture them.
            server.capture_signals = contextlib.nullcontext
            tasks.append(asyncio.create_task(server.serve()))
        # Last: joining the consumer group can take a while (long on the embedded
        # broker), and nothing above waits for it.
        if "worker" in roles:
            executor = JobExecutor(rt.engine, rt.jobs, settings)
            tasks.append(asyncio.create_task(executor.run(stop)))
            worker = Worker(settings, rt.engine, rt.all_workflows)
            await worker.start()
        log.info("running", extra={"action": "serve", "roles": sorted(roles)})
        await stop.wait()
    finally:
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        if worker is not None:
            await worker.stop()
        for pub in publishers:
            await pub.stop()
        if exporter is not None:
            exporter.shutdown()
