"""Notifier registration: consumes notifications.out and delivers to the configured sink."""

from __future__ import annotations

from schemas.notifications import NOTIFICATIONS_TOPIC, NotificationRequested
from service.engine.workflow import Handler, Workflow
from service.workflows.notifier import handlers

WORKFLOW = Workflow(
    name="notifier",
    tables_module="service.workflows.notifier.tables",
    handlers=(
        Handler(
            name="notifier",
            topic=NOTIFICATIONS_TOPIC,
            events=NotificationRequested,
            handle=handlers.handle,
            isolated=True,  # webhooks may be slow: never hold up the other handlers
        ),
    ),
)
