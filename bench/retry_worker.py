"""The worker of the retry benchmark: one handler whose first attempt at each event fails.

``python -m bench.retry_worker`` with the usual ``JOBSTREAM_*`` environment runs the
worker and relay roles (as ``jobstream worker`` and ``jobstream relay`` would) for
this workflow only. The second attempt, from retry tier 1, records the wall-clock
moment it ran in an event-log row, which the benchmark compares with ``x-due-at``.
"""

from __future__ import annotations

import asyncio
import time

from schemas.claims import ClaimsInbound
from schemas.envelope import CloudEvent
from service.app import Runtime, serve
from service.cli.common import stop_on_signals
from service.config import load_settings
from service.db.session import create_engine
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler, Workflow
from service.errors import Retryable
from service.logs import setup_logging

TOPIC = "bench.retry"
_failed_once: set[str] = set()


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    if event.id not in _failed_once:
        _failed_once.add(event.id)
        raise Retryable("the benchmark fails every first attempt")
    uow.record(
        entity_type="bench",
        entity_id=event.id,
        event_type=event.type,
        occurred_at=event.time,
        metadata={"handled_at": time.time()},
    )


WORKFLOW = Workflow(
    name="bench-retry",
    tables_module="service.db.tables",
    handlers=(Handler(name="bench-retry", topic=TOPIC, events=ClaimsInbound, handle=handle),),
)


async def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_json)
    engine = create_engine(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await serve(Runtime(settings, engine, [WORKFLOW]), {"worker", "relay"}, stop)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
