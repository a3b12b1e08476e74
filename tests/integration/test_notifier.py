"""Notifier against a real local HTTP server, through the real worker and broker."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.notifications import NOTIFICATIONS_TOPIC, NotificationRequested
from service.config import Settings
from service.engine.processing import Outcome
from service.engine.uow import UnitOfWork
from service.engine.worker import Worker
from service.errors import Retryable
from service.workflows.notifier import handlers
from service.workflows.notifier.workflow import WORKFLOW
from tests.helpers import consume_all, publish, running, wait_for

pytestmark = pytest.mark.integration

SECRET = "webhook-s3cret"


@dataclass
class Hook:
    """A webhook that answers from a script, per recipient, and records every request."""

    script: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append((headers, body))
            recipient = NotificationRequested.model_validate_json(body).data.recipient
            queue = self.script.get(recipient, [])
            return queue.pop(0) if queue else (200, b'{"ok": true}')


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(state.delay_s)
            status, answer = state.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/jobstream"
    server.shutdown()
    server.server_close()


def webhook_settings(settings: Settings, url: str, timeout_s: float = 5.0) -> Settings:
    return settings.with_overrides(
        notifier_sink="webhook",
        notifier_webhook_url=url,
        notifier_webhook_secret=SECRET,
        notifier_webhook_timeout_s=timeout_s,
    )


@pytest.fixture
async def worker(
    settings: Settings, engine: AsyncEngine, hook: tuple[Hook, str]
) -> AsyncIterator[Worker]:
    # retries and dead letters leave through the outbox: a relay runs beside the worker
    async with running(webhook_settings(settings, hook[1]), engine, [WORKFLOW]) as w:
        yield w


def note(recipient: str) -> NotificationRequested:
    return NotificationRequested.model_validate(
        {
            "id": str(uuid.uuid4()),
            "source": "/tests",
            "time": datetime(2026, 11, 2, 9, tzinfo=UTC),
            "data": {
                "channel": "webhook",
                "recipient": recipient,
                "template": "t",
                "data": {"n": 1},
            },
        }
    )


def signature_ok(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-jobstream-signature"], expected)


async def deliveries(engine: AsyncEngine) -> list[sa.Row]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text("SELECT * FROM notifier_deliveries")))


async def test_two_server_errors_then_one_signed_delivery(
    settings: Settings, engine: AsyncEngine, hook: tuple[Hook, str], worker: Worker
) -> None:
    server, _ = hook
    server.script["flaky"] = [(500, b"try later"), (503, b"still busy")]
    sent = note("flaky")
    await publish(settings, NOTIFICATIONS_TOPIC, [sent])

    delivered = await wait_for(lambda: deliveries(engine), what="a delivery row")

    assert [(d.notification_id, d.sink, d.status_code) for d in delivered] == [
        (sent.id, "webhook", 200)
    ]
    assert len(server.requests) == 3  # two refusals, one success
    for headers, body in server.requests:
        assert body == sent.to_json()
        assert signature_ok(headers, body)
        assert headers["x-jobstream-notification-id"] == sent.id

    async def counted() -> bool:  # the worker counts just after its commit
        return worker.outcomes[Outcome.APPLIED] == 1

    await wait_for(counted, what="the applied outcome")
    assert worker.outcomes[Outcome.RETRIED] == 2

    # The same notification again (a relay republish): not sent a second time.
    await publish(settings, NOTIFICATIONS_TOPIC, [sent, note("marker")])
    await wait_for(lambda: _count_for(server, "marker"), what="the marker's delivery")
    assert len(server.requests) == 4 and len(await deliveries(engine)) == 2


async def _count_for(server: Hook, recipient: str) -> int:
    return sum(
        NotificationRequested.model_validate_json(b).data.recipient == recipient
        for _, b in server.requests
    )


async def test_a_client_error_goes_to_the_dead_letter_topic_with_the_response_body(
    settings: Settings, engine: AsyncEngine, hook: tuple[Hook, str], worker: Worker
) -> None:
    server, _ = hook
    server.script["nobody"] = [(400, b'{"error": "unknown recipient nobody"}')]
    sent = note("nobody")
    await publish(settings, NOTIFICATIONS_TOPIC, [sent])

    dead = await consume_all(
        settings, settings.topic(f"{settings.group_id}.{NOTIFICATIONS_TOPIC}.dlq"), 1
    )

    assert len(dead) == 1
    assert dead[0].value == sent.to_json()  # the original bytes
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["x-error-class"] == "non_retryable"
    assert headers["x-error-type"] == "NonRetryable"
    assert "answered 400" in headers["x-error-message"]
    assert '{"error": "unknown recipient nobody"}' in headers["x-error-message"]
    assert len(server.requests) == 1  # never retried
    assert await deliveries(engine) == []


async def handle_once(engine: AsyncEngine, settings: Settings, sent: NotificationRequested) -> None:
    async with UnitOfWork(engine, settings.topic_prefix, settings) as uow:
        await handlers.handle(uow, sent)
        await uow.commit()


async def test_a_timeout_is_retryable_and_records_nothing(
    settings: Settings, engine: AsyncEngine, hook: tuple[Hook, str]
) -> None:
    server, url = hook
    server.delay_s = 1.0
    with pytest.raises(Retryable, match=r"timed out after 0\.2s"):
        await handle_once(engine, webhook_settings(settings, url, timeout_s=0.2), note("slow"))
    assert await deliveries(engine) == []


async def test_a_delivered_id_is_never_sent_again(
    settings: Settings, engine: AsyncEngine, hook: tuple[Hook, str]
) -> None:
    server, url = hook
    hooked = webhook_settings(settings, url)
    sent = note("once")
    await handle_once(engine, hooked, sent)
    await handle_once(engine, hooked, sent)  # e.g. replayed from the dead-letter topic
    assert len(server.requests) == 1
    assert len(await deliveries(engine)) == 1


async def test_the_log_sink_is_the_default(settings: Settings, engine: AsyncEngine) -> None:
    assert settings.notifier_sink == "log"
    sent = note("someone")
    await handle_once(engine, settings, sent)
    assert [(d.sink, d.status_code) for d in await deliveries(engine)] == [("log", None)]
    async with engine.connect() as conn:
        logged = (await conn.execute(sa.text("SELECT entity_id, metadata FROM event_log"))).one()
    assert logged.entity_id == sent.id and logged.metadata["recipient"] == "someone"
