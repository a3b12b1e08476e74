"""The admin HTTP API: health, jobs, and each workflow's admin routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api import jobs
from service.engine import metrics

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

    from service.api import asyncapi, dashboard, dlq, health

    api.include_router(health.router(rt))

    @api.get("/metrics", tags=["metrics"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        """Prometheus exposition of this process's metrics (see README for each one)."""
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    spec = asyncapi.specification(rt)

    @api.get("/asyncapi", tags=["docs"], response_class=HTMLResponse)
    async def asyncapi_page() -> str:
        """The AsyncAPI document of every topic and payload, rendered."""
        return asyncapi.html(spec)

    @api.get("/asyncapi.json", tags=["docs"])
    async def asyncapi_json() -> Any:
        """The AsyncAPI document (3.0) as JSON."""
        return spec.to_specification().to_jsonable()

    api.include_router(dlq.router(rt), prefix="/api", tags=["dead letters"])
    api.include_router(dashboard.router)

    @api.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    api.include_router(jobs.router(rt), prefix="/api", tags=["jobs"])
    for wf in rt.workflows:
        router = wf.api_router(rt)
        if router is not None:
            api.include_router(router, prefix="/api", tags=[wf.name])
    return api
