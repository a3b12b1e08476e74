"""`jobstream dev`: the whole service in one process, on an embedded stack if needed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from service.cli.common import console, run, stop_on_signals
from service.config import Settings


def run_dev(s: Settings, *, demo: bool, port: int | None) -> None:
    from service.db.migrate import upgrade
    from service.logs import setup_logging

    updates: dict[str, Any] = {}
    if port is not None:
        updates["api_port"] = port
    with contextlib.ExitStack() as stack:
        if s.database_url is None:
            from service.embedded import EmbeddedPostgres

            pg = EmbeddedPostgres(s.state_dir.resolve())
            updates["database_url"] = pg.start()
            stack.callback(pg.stop)
            console.print(f"embedded PostgreSQL in {s.state_dir}/pg")
        if not s.kafka_bootstrap_servers:
            from service.embedded import EmbeddedBroker, broker_profile

            broker = EmbeddedBroker(s.state_dir.resolve())
            updates["kafka_bootstrap_servers"] = broker.start()
            updates.update(broker_profile(s.model_fields_set))
            stack.callback(broker.stop)
            console.print(f"embedded Kafka-protocol broker at {updates['kafka_bootstrap_servers']}")
        s = s.with_overrides(**updates)
        upgrade(s.require_database_url())
        setup_logging(s.log_level, s.log_json)
        run(_serve(s, demo))


async def _serve(s: Settings, demo: bool) -> None:
    from service.app import runtime, serve
    from service.tokens import create_token

    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(s) as rt:
        token = None
        if demo:
            token = await create_token(rt.engine, "demo-admin", "admin")
        task = asyncio.create_task(serve(rt, {"worker", "clock", "relay", "api"}, stop))
        if demo:
            from service.demo import publish_demo

            count = await publish_demo(s)
            console.print(f"published {count} demo events")
        url = f"http://{s.api_host}:{s.api_port}"
        console.print(f"[bold green]jobstream is running[/]: dashboard {url}/dashboard")
        console.print(f"API {url}/docs, events {url}/asyncapi, metrics {url}/metrics")
        if token:
            console.print(f"admin token (demo, log in to the dashboard with it): [bold]{token}[/]")
            console.print(f"try: curl -H 'Authorization: Bearer {token}' {url}/api/claims/orphaned")
        console.print("Ctrl-C stops everything this command started.")
        await task
