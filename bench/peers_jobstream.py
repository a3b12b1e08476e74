"""jobstream side of the peers benchmark: the job as an event, consumed in batches.

``python -m bench.peers_jobstream`` runs the worker role (as ``jobstream worker``
would) for this one workflow. The engine's inbox is the job's insert-if-absent;
the batch handler updates every item and writes every audit row with one
statement each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa

from schemas.envelope import CloudEvent, Id, Payload
from service.app import Runtime, serve
from service.cli.common import stop_on_signals
from service.config import load_settings
from service.db.session import create_engine
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler, Workflow
from service.logs import setup_logging

TOPIC = "bench.peers"


class PeerJobData(Payload):
    job_id: Id
    item_id: Id


class PeerJob(CloudEvent):
    key_field = "item_id"
    type: Literal["bench.peer_job"] = "bench.peer_job"
    data: PeerJobData


UPDATE = sa.text(
    "UPDATE peer_items SET state = 'processed', runs = runs + c.n, updated_at = now() "
    "FROM (SELECT item_id, count(*) AS n FROM unnest(CAST(:items AS text[])) AS item_id "
    "GROUP BY item_id) c WHERE peer_items.id = c.item_id"
)
AUDIT = sa.text(
    "INSERT INTO peer_audit (job_id, item_id, action) "
    "SELECT j, i, 'processed' FROM unnest(CAST(:jobs AS text[]), CAST(:items AS text[])) AS t(j, i)"
)


async def handle_batch(uow: UnitOfWork, events: Sequence[CloudEvent]) -> None:
    jobs = [e.data.job_id for e in events]  # type: ignore[attr-defined]
    items = [e.data.item_id for e in events]  # type: ignore[attr-defined]
    await uow.conn.execute(UPDATE, {"items": items})
    await uow.conn.execute(AUDIT, {"jobs": jobs, "items": items})


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    await handle_batch(uow, [event])


WORKFLOW = Workflow(
    name="bench-peers",
    tables_module="service.db.tables",
    handlers=(
        Handler(
            name="bench-peers",
            topic=TOPIC,
            events=PeerJob,
            handle=handle,
            handle_batch=handle_batch,
            batch=True,
        ),
    ),
)


async def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_json)
    engine = create_engine(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await serve(Runtime(settings, engine, [WORKFLOW]), {"worker"}, stop)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
