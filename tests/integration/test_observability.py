"""Metrics, readiness, correlated logs and the AsyncAPI document, after a short real run."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC, ClaimsInbound, ClaimSubmitted, MemberUpserted
from schemas.envelope import CloudEvent, new_event_id
from schemas.jobs import JOBS_TICKS_TOPIC
from schemas.notifications import NOTIFICATIONS_TOPIC, NotificationRequested
from service.api.app import create_api
from service.app import Runtime
from service.config import Settings
from service.engine import jobs_workflow
from service.engine.clock import Clock
from service.engine.executor import JobExecutor
from service.engine.kafka import KafkaPublisher, ensure_topics
from service.engine.metrics import REGISTRY
from service.engine.uow import UnitOfWork
from service.engine.worker import Worker
from service.engine.workflow import Handler, Job, JobContext, JobResult, Workflow
from service.logs import JsonFormatter
from service.workflows.claims import handlers as claims_handlers
from tests.helpers import event, publish, running, scalar, wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def announce(uow: UnitOfWork, event: CloudEvent) -> None:
    """Claims, plus a notification for every submitted claim: something to follow to the outbox."""
    await claims_handlers.handle(uow, event)
    if isinstance(event, ClaimSubmitted):
        uow.publish(
            NOTIFICATIONS_TOPIC,
            NotificationRequested.model_validate(
                {
                    "id": new_event_id(),
                    "source": "/test",
                    "time": event.time,
                    "data": {
                        "channel": "log",
                        "recipient": event.data.member_id,
                        "template": "claim.received",
                        "data": {},
                    },
                }
            ),
        )


def announcing() -> Workflow:
    handler = Handler("claims", CLAIMS_INBOUND_TOPIC, ClaimsInbound, announce)
    return Workflow("claims", "service.workflows.claims.tables", handlers=(handler,))


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(Runtime(settings, engine)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, object]] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_metrics_and_correlated_logs_after_a_short_run(
    settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    topic = CLAIMS_INBOUND_TOPIC
    before = {
        "applied": sample("jobstream_messages_total", topic=topic, outcome="applied"),
        "dead": sample("jobstream_dead_letters_total", topic=topic, error_class="non_retryable"),
        "published": sample("jobstream_relay_published_total"),
    }
    captured = Captured()
    for name in ("jobstream.processing", "jobstream.relay"):
        logging.getLogger(name).addHandler(captured)
        logging.getLogger(name).setLevel(logging.DEBUG)
    submitted = event(ClaimSubmitted, T0, claim_id="c1", task_id="t1", member_id="m1")
    try:
        async with running(settings, engine, [announcing()]) as worker:
            await publish(
                settings, topic, [event(MemberUpserted, T0, member_id="m1", name="Ada"), submitted]
            )
            await publish(settings, topic, [b"not json"], key="c9")
            await wait_for(
                lambda: scalar(
                    engine, "SELECT count(*) = 2 FROM outbox WHERE published_at IS NOT NULL"
                ),
                what="the notification and the dead letter published",
            )

            async def caught_up() -> dict[tuple[str, str, int], int] | None:
                lags = await worker.measure_lag()
                return lags if lags and not any(lags.values()) else None

            lags = await wait_for(caught_up, what="every partition's lag back to 0")
    finally:
        for name in ("jobstream.processing", "jobstream.relay"):
            logging.getLogger(name).removeHandler(captured)
            logging.getLogger(name).setLevel(logging.NOTSET)

    assert (
        sample("jobstream_messages_total", topic=topic, outcome="applied") - before["applied"] == 2
    )
    assert (
        sample("jobstream_dead_letters_total", topic=topic, error_class="non_retryable")
        - before["dead"]
    ) == 1
    assert sample("jobstream_relay_published_total") - before["published"] == 2
    source = settings.topic(topic)
    assert any(t == source for _, t, _ in lags)

    text = (await client.get("/metrics")).text
    for name in (
        "jobstream_messages_total",
        "jobstream_handler_seconds_bucket",
        "jobstream_dead_letters_total",
        "jobstream_relay_latency_seconds_bucket",
        "jobstream_consumer_lag",
        "faststream_received_messages_total",
    ):
        assert name in text, name

    # one correlation id from the consumed event to the notification it caused, published
    applied = [
        ln
        for ln in captured.lines
        if ln.get("action") == "applied" and ln.get("event_id") == submitted.id
    ]
    assert applied and applied[0]["correlation_id"] == submitted.id
    published = [
        ln
        for ln in captured.lines
        if ln.get("action") == "published" and ln.get("correlation_id") == submitted.id
    ]
    assert len(published) == 1 and published[0]["topic"] == settings.topic(NOTIFICATIONS_TOPIC)


async def test_ready_checks_database_migrations_and_broker(
    settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}

    from service.embedded import free_port

    nowhere = settings.with_overrides(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    transport = httpx.ASGITransport(app=create_api(Runtime(nowhere, engine)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        down = await c.get("/health/ready")
    assert down.status_code == 503
    assert down.json()["checks"]["broker"].startswith("unreachable")


async def test_asyncapi_lists_every_topic_and_payload(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    doc = (await client.get("/asyncapi.json")).json()
    addresses = {ch["address"] for ch in doc["channels"].values()}
    assert settings.topic("claims.events") in addresses
    assert settings.topic("claims.out") in addresses
    assert settings.topic(f"{settings.group_id}.claims.events.dlq") in addresses
    assert {"ClaimSubmitted", "ClaimTimeoutReleased", "NotificationRequested"} <= set(
        doc["components"]["schemas"]
    )
    page = await client.get("/asyncapi")
    assert page.status_code == 200 and "asyncapi" in page.text.lower()
    assert (await client.get("/docs")).status_code == 200


async def test_job_metrics_after_a_few_real_ticks(settings: Settings, engine: AsyncEngine) -> None:
    """Clock, worker and executor on a per-second job: tick lateness, start lateness, runs."""

    async def noop(conn: AsyncConnection, ctx: JobContext) -> JobResult:
        return JobResult(0)

    job = Job("obs.every-second", "* * * * * *", run=noop, description="test", catchup_window_s=60)
    names = (
        "jobstream_tick_lateness_seconds_count",
        "jobstream_job_start_lateness_seconds_count",
        "jobstream_job_run_seconds_count",
    )
    before = {n: sample(n, job=job.name) for n in names}
    runs_before = sample("jobstream_job_runs_total", job=job.name, status="succeeded")
    await ensure_topics(settings, [settings.topic(JOBS_TICKS_TOPIC)])
    worker = Worker(settings, engine, [jobs_workflow.WORKFLOW])
    publisher = KafkaPublisher(settings)
    stop = asyncio.Event()
    await publisher.start()
    await worker.start()
    tasks = [
        asyncio.create_task(JobExecutor(engine, [job], settings).run(stop)),
        asyncio.create_task(Clock(engine, [job], settings, publisher).run(stop)),
    ]
    try:
        await wait_for(
            lambda: scalar(engine, "SELECT count(*) >= 3 FROM job_runs WHERE status = 'succeeded'"),
            what="three per-second runs",
            timeout=60,
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.stop()
        await publisher.stop()
    succeeded = await scalar(engine, "SELECT count(*) FROM job_runs WHERE status = 'succeeded'")
    for name in names:
        assert sample(name, job=job.name) - before[name] >= 3, name
    assert sample("jobstream_job_runs_total", job=job.name, status="succeeded") - runs_before == (
        succeeded
    )
    assert await scalar(engine, "SELECT count(*) FROM job_runs WHERE status <> 'succeeded'") == 0
