"""Claims admin routes: preview and release orphaned claims."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from service.api.auth import Admin, Viewer
from service.engine.workflow import JobContext
from service.workflows.claims.jobs import ReleaseParams, preview_orphaned

if TYPE_CHECKING:
    from service.app import Runtime

PAGE_SIZE = 20
JOB = "claims.release-orphaned"


class OrphanedClaim(BaseModel):
    claim_id: str
    task_id: str
    task_title: str | None
    reviewer_id: str | None
    reviewer_name: str | None
    days_orphaned: int
    last_update: str


class OrphanedPage(BaseModel):
    count: int
    page: int
    page_size: int
    threshold_days: int
    items: list[OrphanedClaim]


class ReleaseRequest(BaseModel):
    model_config = {"extra": "forbid"}

    threshold_days: int | None = Field(default=None, ge=1, le=3650)
    dry_run: bool = False


class ReleaseResponse(BaseModel):
    count: int
    dry_run: bool
    run_id: int | None
    released: list[OrphanedClaim]


def router(rt: Runtime) -> APIRouter:
    r = APIRouter()

    @r.get("/claims/orphaned", response_model=OrphanedPage)
    async def orphaned(
        _: Viewer,
        page: int = Query(1, ge=1, le=100_000),
        threshold_days: int | None = Query(None, ge=1, le=3650),
    ) -> dict[str, Any]:
        params = ReleaseParams(threshold_days=threshold_days)
        ctx = JobContext(datetime.now(UTC), "manual", None, params, True, rt.settings)
        async with rt.engine.connect() as conn:
            count, items = await preview_orphaned(
                conn, ctx, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
            )
        return {
            "count": count,
            "page": page,
            "page_size": PAGE_SIZE,
            "threshold_days": threshold_days or rt.settings.orphan_threshold_days,
            "items": items,
        }

    @r.post("/claims/release-orphaned", response_model=ReleaseResponse)
    async def release(principal: Admin, body: ReleaseRequest | None = None) -> dict[str, Any]:
        body = body or ReleaseRequest()
        outcome = await rt.run_job(
            JOB,
            params=body.model_dump(exclude={"dry_run"}, exclude_none=True),
            dry_run=body.dry_run,
            actor=principal.actor,
        )
        if outcome.result is None:
            raise HTTPException(500, f"release failed: {outcome.error}")
        return {
            "count": outcome.result.affected,
            "dry_run": body.dry_run,
            "run_id": outcome.run_id,
            "released": outcome.result.rows,
        }

    return r
