"""Schedule ticks and job commands: what the clock and the job runner say to the worker."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from schemas.envelope import CloudEvent, Name, Payload

JOBS_TICKS_TOPIC = "jobs.ticks"
JOBS_COMMANDS_TOPIC = "jobs.commands"

Scope = Annotated[str, Field(min_length=1, max_length=200)]
Timezone = Annotated[str, Field(min_length=1, max_length=64)]


class JobTickData(Payload):
    """A slot of a job's schedule is due: run ``job`` (for ``scope``) as of ``slot``."""

    job: Name
    scope: Scope | None = None
    slot: AwareDatetime
    timezone: Timezone = "UTC"


class JobRetryRequestedData(Payload):
    """Run ``run_id`` again: attempt ``attempt`` (the previous one failed)."""

    run_id: Annotated[int, Field(ge=1)]
    job: Name
    scope: Scope | None = None
    slot: AwareDatetime
    attempt: Annotated[int, Field(ge=2, le=1000)]


class JobTick(CloudEvent):
    """Emitted by the clock once per (schedule, slot); the id is uuid5 of the two."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "8c0d7e0e-4a7f-5b0e-9d61-2f1c3b7a9e10",
                    "source": "jobstream",
                    "type": "job.tick",
                    "time": "2026-11-01T03:00:00Z",
                    "subject": "claims.release-orphaned",
                    "data": {
                        "job": "claims.release-orphaned",
                        "slot": "2026-11-01T03:00:00Z",
                        "timezone": "UTC",
                    },
                }
            ]
        }
    )
    key_field = "job"
    type: Literal["job.tick"] = "job.tick"
    data: JobTickData


class JobRetryRequested(CloudEvent):
    """Written by the runner to a ``jobs.commands`` retry tier after a failed attempt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "2b5e6d3c-1f0a-5c8e-8d4b-7a6f5e4d3c21",
                    "source": "jobstream",
                    "type": "job.retry_requested",
                    "time": "2026-11-01T03:00:07Z",
                    "subject": "claims.release-orphaned",
                    "data": {
                        "run_id": 42,
                        "job": "claims.release-orphaned",
                        "slot": "2026-11-01T03:00:00Z",
                        "attempt": 2,
                    },
                }
            ]
        }
    )
    key_field = "job"
    type: Literal["job.retry_requested"] = "job.retry_requested"
    data: JobRetryRequestedData


#: What the worker accepts on ``jobs.commands`` (becomes a discriminated union as
#: more commands arrive).
JobsCommand = Annotated[JobRetryRequested, Field(description="a jobs.commands message")]

INBOUND = (JobTick, JobRetryRequested)
