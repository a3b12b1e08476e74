"""Composition root: builds the engine, worker, relay and API from Settings.

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
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.notifications import NOTIFICATIONS_TOPIC
from service.config import Settings
from service.db.migrate import ensure_at_head
from service.db.session import create_engine
from service.engine.jobs import RunOutcome, find_job, run_job
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.outbox import Relay
from service.engine.worker import Worker
from service.engine.workflow import Job, JobContext, Workflow
from service.workflows import installed_workflows

log = logging.getLogger("jobstream.app")

ROLES = ("worker", "relay", "api")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    workflows: list[Workflow] = field(default_factory=installed_workflows)

    @property
    def jobs(self) -> list[Job]:
        return [job for wf in self.workflows for job in wf.jobs]

    def outbound_topics(self) -> list[str]:
        """Every topic the relay publishes events to (retry and DLQ topics are the worker's)."""
        names = {t for wf in self.workflows for t in wf.outbound_topics} | {NOTIFICATIONS_TOPIC}
        return sorted(self.settings.topic(t) for t in names)

    async def run_job(
        self,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        dry_run: bool = False,
        actor: str | None = None,
        trigger: str = "manual",
        now: datetime | None = None,
    ) -> RunOutcome:
        """Run a job by name with validated parameters (manual trigger by default)."""
        job = find_job(self.jobs, name)
        ctx = JobContext(
            now=now or datetime.now(UTC),
            trigger=trigger,  # type: ignore[arg-type]
            actor=actor,
            params=job.params.model_validate(params or {}),
            dry_run=dry_run,
            settings=self.settings,
        )
        return await run_job(self.engine, job, ctx)


@contextlib.asynccontextmanager
async def runtime(settings: Settings, *, check_schema: bool = True) -> AsyncIterator[Runtime]:
    engine = create_engine(settings)
    try:
        if check_schema:
            await ensure_at_head(engine)
        yield Runtime(settings, engine)
    finally:
        await engine.dispose()


async def serve(rt: Runtime, roles: set[str], stop: asyncio.Event) -> None:
    """Run the given roles in this process until ``stop`` is set."""
    settings = rt.settings
    tasks: list[asyncio.Task[None]] = []
    worker: Worker | None = None
    publisher: KafkaPublisher | None = None
    server: Any = None
    exporter: Any = None
    try:
        if settings.metrics_port is not None and "api" not in roles:
            from prometheus_client import start_http_server

            from service.engine.metrics import REGISTRY

            exporter, _ = start_http_server(
                settings.metrics_port, addr=settings.api_host, registry=REGISTRY
            )
        if "worker" in roles:
            worker = Worker(settings, rt.engine, rt.workflows)
            await worker.start()
        if "relay" in roles:
            await ensure_topics(settings, rt.outbound_topics())
            publisher = KafkaPublisher(settings)
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
        log.info("running", extra={"action": "serve", "roles": sorted(roles)})
        await stop.wait()
    finally:
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        if worker is not None:
            await worker.stop()
        if publisher is not None:
            await publisher.stop()
        if exporter is not None:
            exporter.shutdown()
