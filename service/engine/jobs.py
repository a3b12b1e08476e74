"""Jobs as deployed: the declarations with Settings overrides applied and checked.

A bad cron expression, an unknown timezone or an override for a job that does not
exist stops the service at start with the job's name, the field and the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.engine.schedule import Schedule, ScheduleError
from service.engine.workflow import Job, JobResult
from service.errors import ConfigError


class JobNotFound(LookupError):
    """No job by that name; the message lists the ones there are."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(f"no job named {name!r}; known jobs: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class RunOutcome:
    """What became of one request to run a job.

    ``status``: succeeded, failed, retrying (a retry is on its way), skipped (another
    run of the job holds its lock), duplicate (this slot already has a run),
    dry_run (nothing was kept), or lost (the run was taken over as stalled).
    """

    run_id: int | None
    status: str
    result: JobResult | None
    error: str | None = None


def find_job(jobs: Iterable[Job], name: str) -> Job:
    """The job called ``name``, or JobNotFound."""
    jobs = list(jobs)
    for job in jobs:
        if job.name == name:
            return job
    raise JobNotFound(name, [j.name for j in jobs])


def _where(job: str, field: str) -> str:
    return f'jobs."{job}".{field} (jobstream.toml [jobs."{job}"] or JOBSTREAM_JOBS)'


def _check(job: Job) -> None:
    try:
        Schedule(job.cron, "UTC")
    except ScheduleError as exc:
        raise ConfigError(f"job {job.name!r}: {_where(job.name, 'cron')}: {exc}") from None
    if job.scopes is None:  # a fanned-out job takes each scope's own timezone
        try:
            Schedule(job.cron, job.timezone)
        except ScheduleError as exc:
            raise ConfigError(f"job {job.name!r}: {_where(job.name, 'timezone')}: {exc}") from None


def configure_jobs(jobs: Iterable[Job], settings: Settings) -> list[Job]:
    """Apply ``settings.jobs`` overrides to the declared jobs and check every schedule."""
    declared = list(jobs)
    names = [job.name for job in declared]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"job names must be unique; declared twice: {', '.join(duplicates)}")
    unknown = sorted(set(settings.jobs) - set(names))
    if unknown:
        raise ConfigError(
            f"overrides for unknown job(s) {', '.join(map(repr, unknown))} in jobs "
            f"(jobstream.toml or JOBSTREAM_JOBS); known jobs: {', '.join(sorted(names))}"
        )
    configured = []
    for job in declared:
        override = settings.jobs.get(job.name)
        if override is not None:
            changes: dict[str, Any] = override.model_dump(exclude_none=True)
            if "retry_delays_s" in changes:
                changes["retry_delays_s"] = tuple(changes["retry_delays_s"])
            job = dataclasses.replace(job, **changes)
        _check(job)
        configured.append(job)
    return configured


def retry_delays(job: Job, settings: Settings) -> tuple[float, ...]:
    """The job's retry policy: its own delays, else the deployment's retry tiers."""
    if job.retry_delays_s is not None:
        return job.retry_delays_s
    return tuple(settings.retry_delays_s)
