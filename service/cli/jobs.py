"""`jobstream jobs`: list, run, inspect, pause, resume and backfill jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.table import Table

from service.cli.common import console, fail, need, parse_params, run, settings

if TYPE_CHECKING:
    from service.app import Runtime
    from service.engine.workflow import Job

app = typer.Typer(help="List, run, pause and backfill jobs.", no_args_is_help=True)
T = TypeVar("T")


def with_runtime(action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``action`` against the configured database, turning known errors into exits."""
    from service.app import runtime
    from service.engine.job_admin import JobInputError
    from service.engine.jobs import JobNotFound

    s = settings()
    need(s.require_database_url)

    async def main() -> T:
        async with runtime(s) as rt:
            try:
                return await action(rt)
            except JobNotFound as exc:
                fail(str(exc))
            except JobInputError as exc:
                fail(f"--{exc.field}: {exc}")

    return run(main())


def job_named(rt: Runtime, name: str) -> Job:
    """The configured job called ``name`` (JobNotFound exits with the known names)."""
    from service.engine.jobs import find_job

    return find_job(rt.jobs, name)


def shown(value: str | datetime | None, tz: str = "UTC") -> str:
    """A time in the job's timezone, as people read it."""
    if value is None:
        return "—"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    zone = ZoneInfo(tz if tz != "per scope" else "UTC")
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def parse_time(value: str, flag: str, tz: str) -> datetime:
    """ISO 8601; without an offset it is read in the job's timezone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{flag}: {value!r} is not an ISO 8601 time (e.g. 2026-11-01T03:00 or ...+01:00)")
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(tz))


def bad_params(name: str, exc: ValidationError) -> None:
    """Exit naming each bad parameter as the flag the user typed."""
    problems = "; ".join(
        f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']} (got {e.get('input')!r})"
        for e in exc.errors()
    )
    fail(f"bad parameters for {name}: {problems}")


@app.command("list")
def jobs_list() -> None:
    """Every job: schedule, next run in its timezone, last run and its status, pause."""
    from service.engine.job_admin import overview

    views = with_runtime(lambda rt: overview(rt.engine, rt.jobs, datetime.now(UTC)))
    table = Table("job", "cron", "timezone", "next run", "last run", "status", "paused")
    for v in views:
        d = v.as_dict()
        last = d["last_run"] or {}
        paused = (
            f"by {d['paused']['by']}" if d["paused"] else ("disabled" if not d["enabled"] else "")
        )
        table.add_row(
            d["name"],
            d["cron"],
            d["timezone"],
            shown(d["next_run"], d["timezone"]),
            shown(last.get("slot"), d["timezone"]),
            last.get("status", "—"),
            paused,
        )
    console.print(table)


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def jobs_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="job name, see `jobstream jobs list`")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would change")] = False,
    param: Annotated[list[str] | None, typer.Option(help="job parameter key=value")] = None,
    actor: Annotated[str, typer.Option(help="who is running it (recorded)")] = "cli",
    scope: Annotated[str | None, typer.Option(help="scope of a fanned-out job")] = None,
) -> None:
    """Run a job now (trigger=manual); extra --name value options become parameters."""
    params = parse_params(param or [], list(ctx.args))

    async def action(rt: Runtime) -> Any:
        job_named(rt, name)
        try:
            return await rt.run_job(name, params=params, dry_run=dry_run, actor=actor, scope=scope)
        except ValidationError as exc:
            bad_params(name, exc)

    outcome = with_runtime(action)
    if outcome.result is None:
        fail(f"{name} {outcome.status}: {outcome.error or 'already ran for this slot'}", 1)
    rows = outcome.result.rows
    verb = "would change" if dry_run else "changed"
    if rows:
        table = Table(*rows[0].keys(), title=f"{name}: {outcome.result.affected} {verb}")
        for row in rows:
            table.add_row(*(str(v) for v in row.values()))
        console.print(table)
    else:
        console.print(f"{name}: nothing to change")
    if outcome.run_id is not None:
        console.print(f"run {outcome.run_id} {outcome.status}")


@app.command("history")
def jobs_history(
    name: Annotated[str, typer.Argument(help="job name")],
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="newest N runs")] = 20,
    status: Annotated[str | None, typer.Option(help="only runs with this status")] = None,
) -> None:
    """The job's runs, newest slot first."""
    from service.engine.job_admin import history

    async def action(rt: Runtime) -> tuple[Job, list[dict[str, Any]]]:
        job = job_named(rt, name)
        return job, await history(rt.engine, name, limit, status)

    job, runs = with_runtime(action)
    table = Table("run", "slot", "trigger", "actor", "status", "try", "ms", "rows", "error")
    for r in runs:
        table.add_row(
            str(r["id"]),
            shown(r["slot"], job.timezone) + (f" [{r['scope']}]" if r["scope"] else ""),
            r["trigger"],
            r["actor"] or "",
            r["status"] + (" (retry due)" if r["next_attempt_at"] else ""),
            str(r["attempt"]),
            str(r["duration_ms"] or ""),
            str(r["affected"] if r["affected"] is not None else ""),
            (r["error"] or "")[:80],
        )
    console.print(table)


@app.command("pause")
def jobs_pause(
    name: Annotated[str, typer.Argument(help="job name")],
    reason: Annotated[str | None, typer.Option(help="why (recorded)")] = None,
    actor: Annotated[str, typer.Option(help="who (recorded)")] = "cli",
) -> None:
    """Stop scheduling the job (runs already queued still run)."""
    from service.engine.job_admin import pause

    async def action(rt: Runtime) -> bool:
        job_named(rt, name)
        return await pause(rt.engine, name, actor, reason)

    changed = with_runtime(action)
    console.print(f"{name} {'paused' if changed else 'was already paused'}")


@app.command("resume")
def jobs_resume(
    name: Annotated[str, typer.Argument(help="job name")],
    actor: Annotated[str, typer.Option(help="who (recorded)")] = "cli",
) -> None:
    """Schedule the job again from now on (the paused stretch is not caught up)."""
    from service.engine.job_admin import resume

    async def action(rt: Runtime) -> bool:
        job_named(rt, name)
        return await resume(rt.engine, name, actor, datetime.now(UTC))

    changed = with_runtime(action)
    console.print(f"{name} {'resumed' if changed else 'was not paused'}")


@app.command("backfill")
def jobs_backfill(
    name: Annotated[str, typer.Argument(help="job name")],
    start: Annotated[str, typer.Option("--from", help="first slot time, ISO 8601")],
    end: Annotated[str, typer.Option("--to", help="last slot time, ISO 8601")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="preview each slot")] = False,
    param: Annotated[list[str] | None, typer.Option(help="job parameter key=value")] = None,
    scope: Annotated[str | None, typer.Option(help="scope of a fanned-out job")] = None,
    actor: Annotated[str, typer.Option(help="who (recorded)")] = "cli",
) -> None:
    """Run each slot of a past range once, here, with the slot time as the job's now."""
    from service.cli.backfill import backfill

    params = parse_params(param or [], [])
    with_runtime(
        lambda rt: backfill(
            rt, job_named(rt, name), start, end, dry_run=dry_run, params=params, scope=scope,
            actor=actor,
        )
    )  # fmt: skip
