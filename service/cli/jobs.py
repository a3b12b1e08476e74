"""`jobstream jobs`: list and run jobs."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from service.cli.common import console, fail, need, parse_params, run, settings

app = typer.Typer(help="List and run jobs.", no_args_is_help=True)


@app.command("list")
def jobs_list() -> None:
    """Every job with its schedule."""
    from service.workflows import installed_workflows

    table = Table("job", "cron", "timezone", "description")
    for wf in installed_workflows():
        for job in wf.jobs:
            table.add_row(job.name, job.cron, job.timezone, job.description)
    console.print(table)


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def jobs_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="job name, see `jobstream jobs list`")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would change")] = False,
    param: Annotated[list[str] | None, typer.Option(help="job parameter key=value")] = None,
    actor: Annotated[str, typer.Option(help="who is running it (recorded)")] = "cli",
) -> None:
    """Run a job now (trigger=manual); extra --name value options become parameters."""
    from service.app import runtime
    from service.engine.jobs import JobNotFound

    params = parse_params(param or [], list(ctx.args))
    s = settings()
    need(s.require_database_url)

    async def main() -> None:
        async with runtime(s) as rt:
            try:
                outcome = await rt.run_job(name, params=params, dry_run=dry_run, actor=actor)
            except JobNotFound as exc:
                fail(str(exc))
            except ValidationError as exc:
                problems = "; ".join(
                    f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                    f" (got {e.get('input')!r})"
                    for e in exc.errors()
                )
                fail(f"bad parameters for {name}: {problems}")
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

    run(main())
