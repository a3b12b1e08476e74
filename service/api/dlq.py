"""Dead-letter routes: list, show, replay (one or by filter), discard."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from service.api.auth import Admin, Viewer
from service.api.types import Instant, Storable
from service.engine import dlq, dlq_actions

if TYPE_CHECKING:
    from service.app import Runtime

PAGE_SIZE = 50
#: A dead letter's id: a PostgreSQL bigint, so a bigger number is a 422, not a crash.
DeadLetterId = Annotated[int, Field(ge=1, le=2**63 - 1)]
ErrorClass = Literal["non_retryable", "invalid_transition", "exhausted", "retryable"]
Status = Literal["pending", "replayed", "discarded"]


class DeadLetterSummary(BaseModel):
    id: int
    created_at: datetime
    original_topic: str
    event_type: str | None
    message_key: str | None
    error_class: str
    error_type: str | None
    error_message: str | None
    attempts: int
    status: str
    replay_count: int
    replay_of: int | None


class DeadLetterPage(BaseModel):
    count: int
    page: int
    page_size: int
    pending_by_class: dict[str, int]
    items: list[DeadLetterSummary]


class DeadLetter(DeadLetterSummary):
    consumer_group: str | None
    original_partition: int | None
    original_offset: int | None
    original_timestamp: datetime | None
    message_id: str | None
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    last_replayed_at: datetime | None
    last_replayed_by: str | None
    headers: dict[str, str]
    payload: Any
    payload_text: str
    validation_errors: Any
    traceback: str | None


class Replayed(BaseModel):
    id: int
    topic: str
    to: str
    replay_id: str


class ReplayRequest(BaseModel):
    """Which dead letters to replay: ``ids``, or a filter over pending ones."""

    model_config = {"extra": "forbid"}

    ids: list[DeadLetterId] = Field(default_factory=list, max_length=1000)
    topic: Annotated[str, Storable] | None = Field(default=None, max_length=300)
    error_class: ErrorClass | None = None
    since: Instant | None = None
    dry_run: bool = False
    limit: int = Field(default=100, ge=1, le=1000)
    rate: float | None = Field(default=None, gt=0, le=10_000, description="replays per second")


class ReplayResponse(BaseModel):
    dry_run: bool
    count: int
    items: list[DeadLetterSummary]
    replayed: list[Replayed]


class DiscardRequest(BaseModel):
    model_config = {"extra": "forbid"}

    ids: list[DeadLetterId] = Field(min_length=1, max_length=1000)


class DiscardResponse(BaseModel):
    discarded: list[int]


def router(rt: Runtime) -> APIRouter:
    r = APIRouter()
    settings = rt.settings

    @r.get("/dlq", response_model=DeadLetterPage)
    async def list_dead_letters(
        _: Viewer,
        topic: Annotated[str, Storable] | None = Query(None, max_length=300),
        error_class: ErrorClass | None = None,
        status: Status | None = "pending",
        since: Instant | None = None,
        page: int = Query(1, ge=1, le=100_000),
    ) -> dict[str, Any]:
        flt = dlq.Filter((), topic, error_class, since, status, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        async with rt.engine.connect() as conn:
            total, items = await dlq.find(conn, settings, flt)
            per_class = await dlq.counts(conn)
        return {
            "count": total,
            "page": page,
            "page_size": PAGE_SIZE,
            "pending_by_class": per_class,
            "items": items,
        }

    @r.get("/dlq/{dead_letter_id}", response_model=DeadLetter)
    async def show(
        _: Viewer, dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
    ) -> dict[str, Any]:
        async with rt.engine.connect() as conn:
            item = await dlq.get(conn, dead_letter_id)
        if item is None:
            raise HTTPException(404, f"no dead letter with id {dead_letter_id}")
        return item

    @r.post("/dlq/{dead_letter_id}/replay", response_model=Replayed)
    async def replay(
        principal: Admin, dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
    ) -> dict[str, Any]:
        result = await dlq_actions.replay_one(rt.engine, settings, dead_letter_id, principal.actor)
        if result is None:
            raise HTTPException(
                404, f"no dead letter with id {dead_letter_id} that can be replayed (discarded?)"
            )
        return result

    @r.post("/dlq/replay", response_model=ReplayResponse)
    async def replay_filtered(principal: Admin, body: ReplayRequest) -> dict[str, Any]:
        if not body.ids and not (body.topic or body.error_class or body.since):
            raise HTTPException(422, "give ids, or a filter: topic, error_class and/or since")
        flt = dlq.Filter(
            tuple(body.ids),
            body.topic,
            body.error_class,
            body.since,
            None if body.ids else "pending",
            body.limit,
        )
        async with rt.engine.connect() as conn:
            _, items = await dlq.find(conn, settings, flt)
        items = [it for it in reversed(items) if it["status"] != "discarded"]
        replayed = []
        if not body.dry_run:
            ids = [it["id"] for it in items]
            replayed = await dlq_actions.replay_many(
                rt.engine, settings, ids, principal.actor, rate=body.rate
            )
        return {"dry_run": body.dry_run, "count": len(items), "items": items, "replayed": replayed}

    @r.post("/dlq/{dead_letter_id}/discard", response_model=DiscardResponse)
    async def discard_one(
        principal: Admin, dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
    ) -> dict[str, Any]:
        changed = await dlq_actions.discard(rt.engine, [dead_letter_id], principal.actor)
        if not changed:
            raise HTTPException(404, f"no pending or replayed dead letter with id {dead_letter_id}")
        return {"discarded": changed}

    @r.post("/dlq/discard", response_model=DiscardResponse)
    async def discard_many(principal: Admin, body: DiscardRequest) -> dict[str, Any]:
        return {"discarded": await dlq_actions.discard(rt.engine, body.ids, principal.actor)}

    return r
