"""The admin HTTP API: health, jobs, and each workflow's admin routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from service.api import jobs
from service.db.migrate import current_revision, head_revision

if TYPE_CHECKING:
    from service.app import Runtime


def create_api(rt: Runtime) -> FastAPI:
    api = FastAPI(
        title="jobstream admin API",
        version="0.1.0",
        description="Jobs, dead letters and workflow admin actions. "
        "Bearer tokens: `jobstream tokens create --role admin|viewer`.",
    )
    api.state.runtime = rt

    @api.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/health/ready", tags=["health"], response_model=None)
    async def ready() -> Any:
        checks: dict[str, str] = {}
        try:
            async with rt.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
                current = await current_revision(conn)
            checks["database"] = "ok"
            checks["migrations"] = "ok" if current == head_revision() else f"at {current}"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    api.include_router(jobs.router(rt), prefix="/api", tags=["jobs"])
    for wf in rt.workflows:
        router = wf.api_router(rt)
        if router is not None:
            api.include_router(router, prefix="/api", tags=[wf.name])
    return api
