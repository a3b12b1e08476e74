"""The operator's dashboard: server-rendered pages over the same functions as the API.

Jobs (status, last and next run, Run with a dry-run confirmation, history), dead
letters (filter, inspect, replay, discard, counts per class) and badges for what
needs attention. A viewer sees everything and every action button is disabled;
the server refuses their POSTs anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from service.api import session as sessions
from service.api.views import attention, job_history, jobs_overview
from service.app import Runtime
from service.engine import dlq, dlq_actions, job_admin
from service.engine.jobs import JobNotFound, find_job

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
Page = Annotated[sessions.Session, Depends(sessions.session)]
Acting = Annotated[sessions.Session, Depends(sessions.acting)]
CLASSES = ("non_retryable", "invalid_transition", "exhausted", "retryable")


def ago(when: datetime | str | None, now: datetime | None = None) -> str:
    """ "3 min ago", "in 2 h": the relative time operators read at a glance."""
    if when is None:
        return "never"
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{seconds // size:.0f} {unit}"
            break
    else:
        text = f"{seconds:.0f} s"
    return f"in {text}" if future else f"{text} ago"


TEMPLATES.env.filters["ago"] = ago


def _back(request: Request, route: str, **query: str) -> RedirectResponse:
    url = str(request.url_for(route))
    return RedirectResponse(f"{url}?{urlencode(query)}" if query else url, status_code=303)


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


Rt = Annotated[Runtime, Depends(_runtime)]
router = APIRouter(prefix="/dashboard", include_in_schema=False)


def render(request: Request, name: str, s: sessions.Session | None, **ctx: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "session": s,
            "msg": request.query_params.get("msg"),
            "error": request.query_params.get("error"),
            **ctx,
        },
    )


@router.get("/login", response_class=HTMLResponse, name="login_page")
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", None)


@router.post("/login", name="login")
async def login(
    request: Request, rt: Rt, token: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    principal = await sessions.authenticate(rt.engine, token.strip()) if token else None
    if principal is None:
        return _back(request, "login_page", error="Unknown or revoked token.")
    response = _back(request, "overview")
    sessions.start(response, request, token.strip())
    return response


@router.post("/logout", name="logout")
async def logout(request: Request, s: Page) -> Response:
    response = _back(request, "login_page")
    sessions.end(response)
    return response


@router.get("", response_class=HTMLResponse, name="overview")
async def overview(request: Request, s: Page, rt: Rt) -> HTMLResponse:
    now = datetime.now(UTC)
    async with rt.engine.connect() as conn:
        badges = await attention(rt, conn, now)
        per_class = await dlq.counts(conn)
    jobs = await jobs_overview(rt, now)
    return render(
        request, "overview.html", s, badges=badges, jobs=jobs, per_class=per_class, now=now
    )


@router.get("/jobs/{name}", response_class=HTMLResponse, name="job_page")
async def job_page(request: Request, s: Page, rt: Rt, name: str) -> HTMLResponse:
    job = _job(rt, name)
    runs = await job_history(rt, job.name)
    [view] = [v for v in await jobs_overview(rt, datetime.now(UTC)) if v["name"] == job.name]
    return render(request, "job.html", s, job=job, runs=runs, view=view)


@router.get("/jobs/{name}/confirm", response_class=HTMLResponse, name="confirm_run")
async def confirm_run(request: Request, s: Page, rt: Rt, name: str) -> HTMLResponse:
    job = _job(rt, name)
    preview = await rt.run_job(job.name, dry_run=True, actor=s.principal.actor)
    rows = preview.result.rows if preview.result else []
    return render(
        request,
        "confirm.html",
        s,
        job=job,
        rows=rows,
        affected=preview.result.affected if preview.result else 0,
    )


@router.post("/jobs/{name}/run", name="run_job")
async def run_job(request: Request, s: Acting, rt: Rt, name: str) -> Response:
    job = _job(rt, name)
    try:
        outcome = await rt.run_job(job.name, actor=s.principal.actor)
    except ValidationError as exc:
        return _back(request, "overview", error=f"{job.name}: {exc.errors()[0]['msg']}")
    if outcome.result is None:
        return _back(
            request,
            "overview",
            error=f"{job.name} {outcome.status}: {outcome.error or 'did not run'}",
        )
    return _back(
        request,
        "overview",
        msg=f"{job.name}: {outcome.result.affected} changed (run {outcome.run_id}).",
    )


@router.post("/jobs/{name}/pause", name="pause_job")
async def pause_job(request: Request, s: Acting, rt: Rt, name: str) -> Response:
    job = _job(rt, name)
    changed = await job_admin.pause(
        rt.engine, job.name, s.principal.actor, "paused from the dashboard"
    )
    return _back(
        request, "overview", msg=f"{job.name} {'paused' if changed else 'was already paused'}."
    )


@router.post("/jobs/{name}/resume", name="resume_job")
async def resume_job(request: Request, s: Acting, rt: Rt, name: str) -> Response:
    job = _job(rt, name)
    changed = await job_admin.resume(rt.engine, job.name, s.principal.actor, datetime.now(UTC))
    text = "resumed: its next slot from now on" if changed else "was not paused"
    return _back(request, "overview", msg=f"{job.name} {text}.")


@router.get("/dlq", response_class=HTMLResponse, name="dlq_page")
async def dlq_page(
    request: Request,
    s: Page,
    rt: Rt,
    topic: str = "",
    error_class: str = "",
    status: str = "pending",
    age: str = "",
) -> HTMLResponse:
    since = None
    if age:
        days = {"1h": 1 / 24, "24h": 1, "7d": 7, "30d": 30}.get(age)
        since = datetime.now(UTC) - timedelta(days=days) if days else None
    flt = dlq.Filter(
        (),
        topic or None,
        error_class or None,
        since,
        None if status == "all" else status or None,
        200,
    )
    async with rt.engine.connect() as conn:
        total, items = await dlq.find(conn, rt.settings, flt)
        per_class = await dlq.counts(conn)
        details = {it["id"]: await dlq.get(conn, it["id"]) for it in items[:200]}
    return render(
        request,
        "dlq.html",
        s,
        items=items,
        total=total,
        per_class=per_class,
        details=details,
        classes=CLASSES,
        filters={"topic": topic, "error_class": error_class, "status": status, "age": age},
    )


@router.post("/dlq/replay", name="dlq_replay")
async def dlq_replay(request: Request, s: Acting, rt: Rt) -> Response:
    ids = await _ids(request)
    done = await dlq_actions.replay_many(rt.engine, rt.settings, ids, s.principal.actor)
    return _back(request, "dlq_page", msg=f"Replayed {len(done)} dead letter(s).")


@router.post("/dlq/discard", name="dlq_discard")
async def dlq_discard(request: Request, s: Acting, rt: Rt) -> Response:
    ids = await _ids(request)
    done = await dlq_actions.discard(rt.engine, ids, s.principal.actor)
    return _back(request, "dlq_page", msg=f"Discarded {len(done)} dead letter(s).")


def _job(rt: Runtime, name: str) -> Any:
    try:
        return find_job(rt.jobs, name)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def _ids(request: Request) -> list[int]:
    form = await request.form()
    try:
        ids = [int(v) for v in form.getlist("id") if isinstance(v, str)]
    except ValueError:
        raise HTTPException(422, "dead letter ids must be numbers") from None
    if not ids:
        raise HTTPException(422, "select at least one dead letter")
    return ids
