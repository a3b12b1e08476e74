"""Usage workflow registration: audit and usage consumers (batched), period rollover."""

from __future__ import annotations

from schemas.audit import AUDIT_INBOUND_TOPIC, AuditRecorded
from schemas.notifications import NOTIFICATIONS_TOPIC
from schemas.usage import USAGE_INBOUND_TOPIC, USAGE_OUTBOUND_TOPIC, UsageInbound
from service.engine.workflow import Handler, Job, Workflow
from service.workflows.usage import audit, handlers, jobs

WORKFLOW = Workflow(
    name="usage",
    tables_module="service.workflows.usage.tables",
    handlers=(
        Handler(
            name="usage",
            topic=USAGE_INBOUND_TOPIC,
            events=UsageInbound,
            handle=handlers.handle,
            batch=True,
            handle_batch=handlers.handle_batch,
        ),
        Handler(
            name="audit",
            topic=AUDIT_INBOUND_TOPIC,
            events=AuditRecorded,
            handle=audit.handle,
            batch=True,
            handle_batch=audit.handle_batch,
        ),
    ),
    jobs=(
        Job(
            name="usage.rollover",
            cron="0 * * * *",
            run=jobs.rollover,
            description=(
                "Counters whose hourly, daily or monthly period (UTC) has ended are archived and "
                "announced on usage.out with their final value. New periods start at zero "
                "with their thresholds armed, by event time, without waiting for this job."
            ),
        ),
    ),
    outbound_topics=(USAGE_OUTBOUND_TOPIC, NOTIFICATIONS_TOPIC),
    demo_module="service.workflows.usage.demo",
)
