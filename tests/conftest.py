"""Test fixtures: one real PostgreSQL and one real Kafka-protocol broker per session.

Set JOBSTREAM_TEST_DATABASE_URL / JOBSTREAM_TEST_KAFKA to use servers of your own;
otherwise the embedded ones start once. The schema is migrated once into a template
database that each test clones (a fresh database in ~50 ms); each test also gets
its own topic prefix and consumer group, so tests never see each other's messages.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.config import Settings

TEMPLATE = "jobstream_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def stack() -> Iterator[tuple[str, str]]:
    """(database server URL, bootstrap servers) for the whole session."""
    db_url = os.environ.get("JOBSTREAM_TEST_DATABASE_URL")
    kafka = os.environ.get("JOBSTREAM_TEST_KAFKA")
    if db_url and kafka:
        yield db_url, kafka
        return
    from service.embedded import EmbeddedBroker, EmbeddedPostgres

    state = Path(tempfile.mkdtemp(prefix="jobstream-test-"))
    pg = broker = None
    try:
        if not db_url:
            pg = EmbeddedPostgres(state)
            db_url = pg.start()
        if not kafka:
            broker = EmbeddedBroker(state)
            kafka = broker.start()
        yield db_url, kafka
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()


def _with_db(url: str, name: str) -> str:
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin_execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def template_url(stack: tuple[str, str]) -> str:
    from service.db.migrate import upgrade_async

    server_url, _ = stack
    await _admin_execute(
        server_url,
        f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)',
        f'CREATE DATABASE "{TEMPLATE}"',
    )
    url = _with_db(server_url, TEMPLATE)
    await upgrade_async(url)
    return url


@pytest.fixture
async def database_url(stack: tuple[str, str], template_url: str) -> AsyncIterator[str]:
    server_url, _ = stack
    name = f"jobstream_t{os.getpid()}_{next(_counter)}"
    await _admin_execute(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield _with_db(server_url, name)
    await _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(stack: tuple[str, str], database_url: str) -> Settings:
    n = next(_counter)
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=stack[1],
        kafka_idempotent_producer=False,
        kafka_fetch_max_wait_ms=20,  # Tansu holds a fetch for its whole wait
        kafka_partitions=3,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=200,
        topic_prefix=f"t{os.getpid()}x{n}.",
        group_id=f"g{os.getpid()}x{n}",
        retry_delays_s=[0.2, 0.4, 0.6, 0.8, 1.0],
        retry_jitter=0.0,
        log_json=False,
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    from service.db.session import create_engine

    eng = create_engine(settings)
    yield eng
    await eng.dispose()
