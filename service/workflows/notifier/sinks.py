"""Where notifications go: a log line (default) or a webhook signed with HMAC-SHA256.

A sink raises ``Retryable`` for what may pass (5xx, 408, 429, timeouts, connection
errors) and ``NonRetryable`` for what will not (any other non-2xx answer), so the
engine sends the message to a retry tier or to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Protocol

import httpx

from schemas.notifications import NotificationRequested
from service.config import Settings
from service.errors import NonRetryable, Retryable

log = logging.getLogger("jobstream.notifier")

SIGNATURE_HEADER = "X-Jobstream-Signature"
ID_HEADER = "X-Jobstream-Notification-Id"
BODY_LIMIT = 1000
#: Client errors that say "not now" rather than "never".
RETRYABLE_4XX = frozenset({408, 425, 429})


class Sink(Protocol):
    name: str

    async def deliver(self, note: NotificationRequested, body: bytes) -> int | None:
        """Deliver or raise; returns the HTTP status when there is one."""
        ...


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class LogSink:
    name = "log"

    async def deliver(self, note: NotificationRequested, body: bytes) -> int | None:
        d = note.data
        log.info(
            "notification",
            extra={
                "action": "notify",
                "notification_id": note.id,
                "channel": d.channel,
                "recipient": d.recipient,
                "template": d.template,
                "data": d.data,
            },
        )
        return None


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, secret: str, timeout_s: float) -> None:
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s

    async def deliver(self, note: NotificationRequested, body: bytes) -> int | None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            ID_HEADER: note.id,
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise Retryable(f"webhook {self.url} timed out after {self.timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"webhook {self.url} unreachable: {exc!r}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return status
        message = f"webhook {self.url} answered {status}: {response.text[:BODY_LIMIT]}"
        if status >= 500 or status in RETRYABLE_4XX:
            raise Retryable(message)
        raise NonRetryable(message)


def sink_for(settings: Settings | None) -> Sink:
    """The sink the settings choose (the log sink when there are none)."""
    if settings is None or settings.notifier_sink == "log":
        return LogSink()
    url, secret = settings.notifier_webhook_url, settings.notifier_webhook_secret
    # Settings refuses a webhook sink without both.
    assert url is not None
    assert secret is not None
    return WebhookSink(str(url), secret.get_secret_value(), settings.notifier_webhook_timeout_s)
