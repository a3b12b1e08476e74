"""`jobstream clock --simulate FROM TO`: which slots would fire, computed, nothing sent."""

from __future__ import annotations

from rich.table import Table

from service.cli.common import console, fail
from service.cli.jobs import parse_time, shown
from service.config import Settings
from service.errors import ConfigError


def print_simulation(s: Settings, start: str, end: str, only: str | None) -> None:
    """Print every (slot, job) in [FROM, TO]; times without an offset are the job's (or UTC)."""
    from service.app import configured_jobs
    from service.engine.clock import simulate
    from service.engine.jobs import JobNotFound, find_job

    try:
        jobs = configured_jobs(s)
        tz = find_job(jobs, only).timezone if only else "UTC"
    except (ConfigError, JobNotFound) as exc:
        fail(str(exc))
    t0, t1 = parse_time(start, "--simulate FROM", tz), parse_time(end, "--simulate TO", tz)
    if t1 < t0:
        fail(f"--simulate: TO ({end}) is before FROM ({start})")
    fired = simulate(jobs, t0, t1, only)
    table = Table("slot (UTC)", "local time", "job", title=f"{len(fired)} slot(s)")
    for job, slot in fired:
        scoped = " (each scope: in its own timezone)" if job.scopes else ""
        table.add_row(shown(slot), shown(slot, job.timezone), job.name + scoped)
    console.print(table)
