"""Challenges workflow registration: tables, the challenges.events handler, four jobs."""

from __future__ import annotations

from schemas.challenges import (
    CHALLENGES_INBOUND_TOPIC,
    CHALLENGES_OUTBOUND_TOPIC,
    ChallengesInbound,
)
from schemas.notifications import NOTIFICATIONS_TOPIC
from service.engine.workflow import Handler, Job, Workflow
from service.workflows.challenges import handlers, jobs

WORKFLOW = Workflow(
    name="challenges",
    tables_module="service.workflows.challenges.tables",
    handlers=(
        Handler(
            name="challenges",
            topic=CHALLENGES_INBOUND_TOPIC,
            events=ChallengesInbound,
            handle=handlers.handle,
        ),
    ),
    jobs=(
        Job(
            name="challenges.auto-complete",
            cron="0 0 * * *",
            run=jobs.auto_complete,
            description=(
                "Active challenges past their end close: completed when the members' average "
                "completion rate is at least 80 %, else failed; every member is notified once."
            ),
        ),
        Job(
            name="challenges.refresh-stats",
            cron="0 * * * *",
            run=jobs.refresh_stats,
            description=(
                "The challenge_stats materialized view is refreshed concurrently; "
                "challenges whose statistics changed are announced."
            ),
        ),
        Job(
            name="challenges.streak-reminders",
            cron="0 8 * * *",
            run=jobs.streak_reminders,
            scopes=jobs.timezone_scopes,
            description=(
                "At 08:00 in each user timezone: users with no progress today in a running "
                "challenge are reminded, once per local day."
            ),
        ),
        Job(
            name="challenges.cleanup-notifications",
            cron="30 3 * * *",
            run=jobs.cleanup_notifications,
            params=jobs.CleanupParams,
            description=(
                "Notifications older than 30 days are deleted in bounded batches, "
                "each its own short transaction; the count is reported."
            ),
        ),
    ),
    outbound_topics=(CHALLENGES_OUTBOUND_TOPIC, NOTIFICATIONS_TOPIC),
    demo_module="service.workflows.challenges.demo",
)
