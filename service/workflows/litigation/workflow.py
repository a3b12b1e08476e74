"""Litigation workflow registration: tenants' case events, SLA and local-morning jobs."""

from __future__ import annotations

from schemas.litigation import (
    LITIGATION_INBOUND_TOPIC,
    LITIGATION_OUTBOUND_TOPIC,
    LitigationInbound,
)
from schemas.notifications import NOTIFICATIONS_TOPIC
from service.engine.workflow import Handler, Job, Workflow
from service.workflows.litigation import handlers, jobs, reports

WORKFLOW = Workflow(
    name="litigation",
    tables_module="service.workflows.litigation.tables",
    handlers=(
        Handler(
            name="litigation",
            topic=LITIGATION_INBOUND_TOPIC,
            events=LitigationInbound,
            handle=handlers.handle,
        ),
    ),
    jobs=(
        Job(
            name="litigation.sla-check",
            cron="*/15 * * * *",
            run=jobs.sla_check,
            params=jobs.TenantParams,
            catchup_window_s=3600,
            description=(
                "Open tasks past their SLA (created + SLA hours) or their due date are flagged, "
                "announced on litigation.out and their assignee alerted, once per breach."
            ),
        ),
        Job(
            name="litigation.hearing-reminders",
            cron="0 8 * * *",
            run=jobs.hearing_reminders,
            params=jobs.WindowParams,
            scopes=jobs.tenant_scopes,
            description=(
                "08:00 in each tenant's timezone: the case owner is reminded, once per hearing, "
                "of hearings from now to the end of tomorrow (local)."
            ),
        ),
        Job(
            name="litigation.deadline-alerts",
            cron="0 9 * * *",
            run=jobs.deadline_alerts,
            params=jobs.DeadlineParams,
            scopes=jobs.tenant_scopes,
            description=(
                "09:00 in each tenant's timezone: the case owner is alerted, once per deadline, "
                "of open deadlines due by the end of the day after tomorrow (local)."
            ),
        ),
        Job(
            name="litigation.daily-snapshot",
            cron="59 23 * * *",
            run=reports.daily_snapshot,
            params=jobs.TenantParams,
            scopes=jobs.tenant_scopes,
            description=(
                "23:59 in each tenant's timezone: open, overdue and closed task counts and SLA "
                "compliance for the local day, stored once per tenant and day."
            ),
        ),
        Job(
            name="litigation.automation-health",
            cron="5 * * * *",
            run=reports.automation_health,
            params=reports.HealthParams,
            description=(
                "Failed or missed runs of the litigation jobs are reported to automation-ops, "
                "each run once."
            ),
        ),
    ),
    outbound_topics=(LITIGATION_OUTBOUND_TOPIC, NOTIFICATIONS_TOPIC),
    demo_module="service.workflows.litigation.demo",
)
