"""Jobs routes: list, history, run now, pause, resume, backfill.

Viewers read; admins act, and every action records the admin as its actor. A run
is executed in this process through the same runner as the workers (same lock,
same job_runs row); a backfill is queued for the workers' executors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.auth import Admin, Viewer
from service.api.types import Instant, Storable
from service.db.tables import JOB_STATUSES
from service.engine import job_admin
from service.engine.jobs import JobNotFound, find_job
from service.engine.workflow import Job

if TYPE_CHECKING:
    from service.app import Runtime


class RunRequest(BaseModel):
    """Run a job now, with these parameters (or preview it with ``dry_run``)."""

    model_config = ConfigDict(extra="forbid")

    params: Annotated[dict[str, Any], Storable] = Field(
        default_factory=dict, description="the job's parameters"
    )
    dry_run: bool = Field(default=False, description="list what would change, change nothing")
    scope: Annotated[str, Storable] | None = Field(default=None, max_length=200)


class RunResponse(BaseModel):
    """The run's id and outcome, and the rows it changed (or would change)."""

    run_id: int | None
    status: str
    dry_run: bool
    affected: int | None
    rows: list[dict[str, Any]]
    error: str | None


class PauseRequest(BaseModel):
    """Why the job is paused (recorded with the admin)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Storable] | None = Field(default=None, max_length=500)


class BackfillRequest(BaseModel):
    """Queue one run per slot in [from, to] (times with an offset)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Instant = Field(alias="from", description="first slot time (with offset)")
    end: Instant = Field(alias="to", description="last slot time (with offset)")
    dry_run: bool = False
    params: Annotated[dict[str, Any], Storable] = Field(default_factory=dict)
    scope: Annotated[str, Storable] | None = Field(default=None, max_length=200)


class BackfillResponse(BaseModel):
    """The slots of the range and the ids of the runs queued (none for a dry run)."""

    job: str
    dry_run: bool
    slots: list[datetime]
    queued: list[int]


def _params(job: Job, params: dict[str, Any]) -> Any:
    """The job's parameters, or a 422 naming the bad field under ``body.params``."""
    try:
        return job.params.model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", "params", *e["loc"])} for e in errors]
        ) from None


def _input_error(exc: job_admin.JobInputError) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", exc.field), "msg": str(exc), "input": None}]
    )


async def _run(rt: Runtime, job: Job, body: RunRequest, actor: str) -> dict[str, Any]:
    """Run now; 409 if another run holds the job's lock or the slot ran, 500 if it failed."""
    params = _params(job, body.params)
    try:
        outcome = await rt.run_job(
            job.name,
            params=params.model_dump(),
            dry_run=body.dry_run,
            actor=actor,
            scope=body.scope,
        )
    except job_admin.JobInputError as exc:
        raise _input_error(exc) from None
    answer = {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "dry_run": body.dry_run,
        "affected": outcome.result.affected if outcome.result else None,
        "rows": outcome.result.rows if outcome.result else [],
        "error": outcome.error,
    }
    if outcome.status in ("skipped", "duplicate"):
        raise HTTPException(409, answer)
    if outcome.result is None:
        raise HTTPException(500, answer)
    return answer


def router(rt: Runtime) -> APIRouter:
    """The /jobs routes over ``rt``."""
    r = APIRouter()

    def job_named(name: str) -> Job:
        try:
            return find_job(rt.jobs, name)
        except JobNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @r.get("/jobs")
    async def jobs(_: Viewer) -> list[dict[str, Any]]:
        """Every job: schedule, next run (its timezone), last run, pause."""
        views = await job_admin.overview(rt.engine, rt.jobs, datetime.now(UTC))
        return [v.as_dict() for v in views]

    @r.get("/jobs/{name}/runs")
    async def runs(
        _: Viewer,
        name: str,
        limit: int = Query(50, ge=1, le=1000),
        status: str | None = Query(None, pattern=f"^({'|'.join(JOB_STATUSES)})$"),
    ) -> list[dict[str, Any]]:
        """The job's runs, newest slot first."""
        job_named(name)
        return await job_admin.history(rt.engine, name, limit, status)

    @r.post("/jobs/{name}/run", response_model=RunResponse)
    async def run(principal: Admin, name: str, body: RunRequest | None = None) -> dict[str, Any]:
        """Run the job now as this admin (trigger=manual) and return what changed."""
        body = body or RunRequest()
        job = job_named(name)
        return await _run(rt, job, body, principal.actor)

    @r.post("/jobs/{name}/pause")
    async def pause(
        principal: Admin, name: str, body: PauseRequest | None = None
    ) -> dict[str, Any]:
        """Stop scheduling the job; queued runs still run."""
        job_named(name)
        reason = body.reason if body else None
        changed = await job_admin.pause(rt.engine, name, principal.actor, reason)
        return {"job": name, "paused": True, "changed": changed}

    @r.post("/jobs/{name}/resume")
    async def resume(principal: Admin, name: str) -> dict[str, Any]:
        """Schedule the job again from now on."""
        job_named(name)
        changed = await job_admin.resume(rt.engine, name, principal.actor, datetime.now(UTC))
        return {"job": name, "paused": False, "changed": changed}

    @r.post("/jobs/{name}/backfill", response_model=BackfillResponse)
    async def backfill(principal: Admin, name: str, body: BackfillRequest) -> dict[str, Any]:
        """Queue each slot of a past range once (trigger=backfill) for the workers."""
        job = job_named(name)
        params = _params(job, body.params).model_dump(mode="json")
        try:
            tz = await job_admin.scope_timezone(rt.engine, job, body.scope)
            slots = job_admin.backfill_slots(
                job, body.start, body.end, datetime.now(UTC), rt.settings.backfill_max_slots, tz
            )
        except job_admin.JobInputError as exc:
            raise _input_error(exc) from None
        queued: list[int] = []
        if not body.dry_run:
            queued = await job_admin.queue_backfill(
                rt.engine,
                job,
                slots,
                actor=principal.actor,
                params=params,
                scope=body.scope,
                timezone=tz,
            )
        return {"job": name, "dry_run": body.dry_run, "slots": slots, "queued": queued}

    return r
