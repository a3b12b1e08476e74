"""Escrow workflow registration: tables, the escrow.events handler, four scheduled jobs."""

from __future__ import annotations

from schemas.escrow import ESCROW_INBOUND_TOPIC, ESCROW_OUTBOUND_TOPIC, EscrowInbound
from schemas.notifications import NOTIFICATIONS_TOPIC
from service.engine.workflow import Handler, Job, Workflow
from service.workflows.escrow import handlers, jobs

WORKFLOW = Workflow(
    name="escrow",
    tables_module="service.workflows.escrow.tables",
    handlers=(
        Handler(
            name="escrow",
            topic=ESCROW_INBOUND_TOPIC,
            events=EscrowInbound,
            handle=handlers.handle,
        ),
    ),
    jobs=(
        Job(
            name="escrow.release",
            cron="0 * * * *",
            run=jobs.release_escrows,
            description=(
                "Escrows held 48 h are released: the recipient's receivable moves to fiat, "
                "their funded cycle becomes obligated, the donor earns 50 charity coins."
            ),
        ),
        Job(
            name="escrow.expire-matches",
            cron="0 */6 * * *",
            run=jobs.expire_matches,
            description="Matches not accepted within 24 h expire; the donor is notified.",
        ),
        Job(
            name="escrow.cycle-reminders",
            cron="0 9 * * *",
            run=jobs.remind_and_default_cycles,
            description=(
                "Obligated cycles due in exactly 7 days get one reminder; overdue ones "
                "default and cost their user 0.10 trust score (floored at 0)."
            ),
        ),
        Job(
            name="escrow.leaderboard",
            cron="0 0 * * *",
            run=jobs.recalculate_leaderboard,
            description=(
                "Boosts past expiry expire; scores from completed cycles, average "
                "completion days and active boosts are recomputed and densely ranked."
            ),
        ),
    ),
    outbound_topics=(ESCROW_OUTBOUND_TOPIC, NOTIFICATIONS_TOPIC),
    demo_module="service.workflows.escrow.demo",
)
