"""What a workflow hands the engine: its tables, event handlers and jobs.

The engine iterates over these declarations; it never names a workflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from schemas.envelope import CloudEvent
    from service.config import Settings
    from service.engine.uow import UnitOfWork


HandleFn = Callable[["UnitOfWork", "CloudEvent"], Awaitable[None]]
#: Applies several events, in order, in the caller's transaction, with set-based SQL.
HandleBatchFn = Callable[["UnitOfWork", Sequence["CloudEvent"]], Awaitable[None]]


@dataclass(frozen=True)
class Handler:
    """One consumer: a topic, the union of event types it accepts, and the transition."""

    name: str
    topic: str
    events: Any
    handle: HandleFn
    retryable: tuple[type[BaseException], ...] = ()
    non_retryable: tuple[type[BaseException], ...] = ()
    retry_delays_s: tuple[float, ...] | None = None
    #: Consume in batches (Settings.batch_max_records / batch_max_wait_ms), one
    #: transaction per batch. ``handle_batch`` (optional) applies a whole batch with
    #: set-based SQL; without it the engine calls ``handle`` per event inside the
    #: batch's transaction. A batch that fails is replayed one message at a time.
    batch: bool = False
    handle_batch: HandleBatchFn | None = None
    #: A consumer of its own (for handlers that call out and may be slow, like a webhook).
    isolated: bool = False


class NoParams(BaseModel):
    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class Scope:
    """One schedule of a fanned-out job: e.g. a timezone group or a tenant."""

    id: str
    timezone: str


#: Lists a job's scopes now (e.g. the distinct timezones of users); read by the clock.
ScopesFn = Callable[["AsyncConnection"], Awaitable[list[Scope]]]


@dataclass(frozen=True)
class JobContext:
    """Everything a job may read: ``now`` is the slot time, never the wall clock.

    ``scope`` is set for a fanned-out job (see ``Job.scopes``): the job touches only
    the rows of that scope (that timezone group, that tenant).
    """

    now: datetime
    trigger: Literal["scheduled", "manual", "backfill"]
    actor: str | None
    params: BaseModel
    dry_run: bool
    settings: Settings
    scope: str | None = None
    timezone: str = "UTC"
    run_id: int | None = None


@dataclass(frozen=True)
class JobResult:
    """What a run changed (or, in a dry run, would change), exactly those rows."""

    affected: int
    rows: list[dict[str, Any]] = field(default_factory=list)


JobFn = Callable[["AsyncConnection", JobContext], Awaitable[JobResult]]


@dataclass(frozen=True)
class Job:
    """A schedulable, manually triggerable, set-based unit of work."""

    name: str
    cron: str
    run: JobFn
    description: str
    timezone: str = "UTC"
    enabled: bool = True
    params: type[BaseModel] = NoParams
    catchup_window_s: float = 3600
    overlap: Literal["skip", "queue"] = "skip"
    timeout_s: float = 300
    jitter_s: float = 0
    pause_on_failure: bool = False
    deadline_s: float | None = None
    retry_delays_s: tuple[float, ...] | None = None
    #: Fan out: one schedule per scope, each at ``cron`` in the scope's own timezone
    #: (``timezone`` is then ignored). ``None``: one schedule in ``timezone``.
    scopes: ScopesFn | None = None


@dataclass(frozen=True)
class Attention:
    """Something an operator should look at, e.g. "4 orphaned claims", and the job that fixes it."""

    label: str
    count: int
    job: str | None = None


#: Counts what needs attention in a workflow now; the dashboard shows it as badges.
AttentionFn = Callable[["AsyncConnection", "Settings", datetime], Awaitable[list[Attention]]]


@dataclass(frozen=True)
class Workflow:
    name: str
    tables_module: str
    handlers: tuple[Handler, ...] = ()
    jobs: tuple[Job, ...] = ()
    outbound_topics: tuple[str, ...] = ()
    #: The event type (or a union) published on ``outbound_topics``, for the AsyncAPI document.
    outbound_events: Any = None
    #: Module with ``router(runtime) -> fastapi.APIRouter`` for admin actions, if any.
    api_module: str | None = None
    #: Module with ``demo_events(now) -> list[tuple[topic, CloudEvent]]`` for ``dev --demo``.
    demo_module: str | None = None
    attention: AttentionFn | None = None

    def load_tables(self) -> None:
        importlib.import_module(self.tables_module)

    def api_router(self, runtime: Any) -> Any:
        if self.api_module is None:
            return None
        return importlib.import_module(self.api_module).router(runtime)

    def demo_events(self, now: datetime) -> list[tuple[str, CloudEvent]]:
        if self.demo_module is None:
            return []
        events: list[tuple[str, CloudEvent]] = importlib.import_module(
            self.demo_module
        ).demo_events(now)
        return events
