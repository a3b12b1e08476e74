"""Claims workflow registration: tables, the claims.events handler, jobs, admin API."""

from __future__ import annotations

from schemas.claims import (
    CLAIMS_INBOUND_TOPIC,
    CLAIMS_OUTBOUND_TOPIC,
    ClaimsInbound,
    ClaimTimeoutReleased,
)
from service.engine.workflow import Handler, Job, Workflow
from service.workflows.claims import handlers, jobs

WORKFLOW = Workflow(
    name="claims",
    tables_module="service.workflows.claims.tables",
    handlers=(
        Handler(
            name="claims",
            topic=CLAIMS_INBOUND_TOPIC,
            events=ClaimsInbound,
            handle=handlers.handle,
            handle_batch=handlers.handle_batch,
            batch=True,
        ),
    ),
    jobs=(
        Job(
            name="claims.release-orphaned",
            cron="0 3 * * *",
            run=jobs.release_orphaned,
            params=jobs.ReleaseParams,
            description=(
                "Claims under review longer than the threshold (default 7 days) go back to "
                "submitted and lose their reviewer, so another reviewer can take them. "
                "No one is penalised."
            ),
        ),
    ),
    outbound_topics=(CLAIMS_OUTBOUND_TOPIC,),
    outbound_events=ClaimTimeoutReleased,
    api_module="service.workflows.claims.api",
    demo_module="service.workflows.claims.demo",
    attention=jobs.attention,
)
