"""Shared benchmark plumbing: a stack to run on and a fresh database per scenario."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import Settings

console = Console()


@contextlib.contextmanager
def bench_stack(settings: Settings, *, broker: bool = False) -> Iterator[Settings]:
    """Use the configured servers, or start embedded ones in ``state_dir/bench``."""
    updates: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        state = Path(settings.state_dir).resolve() / "bench"
        state.mkdir(parents=True, exist_ok=True)
        if settings.database_url is None:
            from service.embedded import EmbeddedPostgres

            pg = EmbeddedPostgres(state)
            updates["database_url"] = pg.start()
            stack.callback(pg.stop)
        if broker and not settings.kafka_bootstrap_servers:
            from service.embedded import EmbeddedBroker

            b = EmbeddedBroker(state)
            updates["kafka_bootstrap_servers"] = b.start()
            updates["kafka_idempotent_producer"] = False
            stack.callback(b.stop)
        yield settings.with_overrides(**updates)


async def fresh_database(server_url: str, name: str) -> str:
    """Drop and recreate ``name`` on the server, migrate it, return its URL."""
    from service.db.migrate import upgrade_async

    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    await upgrade_async(url)
    return url


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cores() -> int:
    return os.cpu_count() or 1
