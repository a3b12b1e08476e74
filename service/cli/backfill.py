"""`jobstream jobs backfill`: each slot of a past range, run here once, with a progress bar."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from service.cli.common import console, fail
from service.cli.jobs import bad_params, parse_time, shown
from service.engine.job_admin import backfill_slots, scope_timezone

if TYPE_CHECKING:
    from service.app import Runtime
    from service.engine.workflow import Job


async def backfill(
    rt: Runtime,
    job: Job,
    start: str,
    end: str,
    *,
    dry_run: bool,
    params: dict[str, Any],
    scope: str | None,
    actor: str,
) -> None:
    """Run (or, with ``dry_run``, preview) every slot in [start, end] in order."""
    tz = await scope_timezone(rt.engine, job, scope)
    slots = backfill_slots(
        job,
        parse_time(start, "--from", tz),
        parse_time(end, "--to", tz),
        datetime.now(UTC),
        rt.settings.backfill_max_slots,
        tz,
    )
    if not slots:
        fail(f"no slot of {job.cron!r} ({tz}) between --from and --to", 1)
    try:
        job.params.model_validate(params)
    except ValidationError as exc:
        bad_params(job.name, exc)
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task(
            f"{job.name} {'preview' if dry_run else 'backfill'}", total=len(slots)
        )
        for slot in slots:
            outcome = await rt.run_job(
                job.name,
                params=params,
                dry_run=dry_run,
                actor=actor,
                trigger="backfill",
                now=slot,
                scope=scope,
                timezone=tz,
            )
            results.append((slot, outcome))
            progress.advance(task)
    table = Table("slot", "status", "rows", "error", title=f"{job.name}: {len(slots)} slots")
    for slot, outcome in results:
        affected = outcome.result.affected if outcome.result is not None else None
        table.add_row(
            shown(slot, tz),
            outcome.status,
            "" if affected is None else str(affected),
            (outcome.error or "")[:80],
        )
    console.print(table)
    counts = Counter(outcome.status for _, outcome in results)
    console.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if counts.get("failed"):
        fail(f"{counts['failed']} slot(s) failed; see `jobstream jobs history {job.name}`", 1)
