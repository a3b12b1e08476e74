"""The embedded stack: PostgreSQL 18 on a unix socket and the Tansu broker, no Docker."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import create_async_engine

from service.embedded import EmbeddedBroker, EmbeddedPostgres, embedded_stack, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A private folder: pytest prunes old sessions' tmp_path trees, which would pull the
    data folder from under a server if several test sessions run at once."""
    path = Path(tempfile.mkdtemp(prefix="jobstream-embedded-")).resolve()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


async def _scalar(url: str, sql: str) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(sql))).scalar_one()
    finally:
        await engine.dispose()


async def _roundtrip(bootstrap: str) -> None:
    topic = f"embedded-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"embedded-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # Tansu holds a JoinGroup for about half the session timeout (5 s at the default).
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got.extend((r.key, r.value) for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    assert got == [(b"k1", b"hello")]


async def test_embedded_postgres_and_broker(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    broker = EmbeddedBroker(tmp_path)
    try:
        url = pg.start()
        socket_dir = tmp_path / "pg"  # pytest gives a resolved path
        assert url == f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
        assert pg.start() == url  # idempotent
        bootstrap = broker.start()  # from inside a running loop: the probe uses a thread
        host, port = bootstrap.split(":")
        assert host == "127.0.0.1"

        version = await _scalar(url, "SELECT version()")
        assert isinstance(version, str)
        assert version.startswith("PostgreSQL 18"), version

        await _roundtrip(bootstrap)

        # a template with a table, cloned
        tpl_url = await pg.create_database("embedded_tpl")
        engine = create_async_engine(tpl_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE marker (v int)"))
                await conn.execute(sa.text("INSERT INTO marker VALUES (42)"))
        finally:
            await engine.dispose()
        clone_url = await pg.create_database("embedded_clone", template="embedded_tpl")
        assert clone_url == url.replace("/postgres?", "/embedded_clone?")
        assert await _scalar(clone_url, "SELECT v FROM marker") == 42
        await pg.drop_database("embedded_clone")
        await pg.drop_database("embedded_clone")  # IF EXISTS
        assert (
            await _scalar(url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'embedded_%'")
            == 1
        )

        with pytest.raises(ValueError, match="invalid database name"):
            await pg.create_database('x"; DROP DATABASE postgres; --')
        with pytest.raises(ValueError, match="invalid database name"):
            await pg.create_database("ok", template="Bad-Name")

        pg_pid, broker_pid = pg.pid, broker.pid
        assert pg_pid is not None and broker_pid is not None
    finally:
        broker.stop()
        pg.stop()

    assert _gone(broker_pid)
    assert _gone(pg_pid)
    assert _refuses(int(port))
    assert not (socket_dir / ".s.PGSQL.5432").exists()
    assert not (socket_dir / "postmaster.pid").exists()
    assert (tmp_path / "tansu.log").exists()
    # idempotent
    broker.stop()
    pg.stop()


def test_embedded_stack_stops_both_on_keyboard_interrupt(tmp_path: Path) -> None:
    seen: list[str] = []

    def interrupted_body() -> None:
        with embedded_stack(tmp_path) as (url, bootstrap):
            seen.extend([url, bootstrap])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_body()
    url, bootstrap = seen
    assert url == f"postgresql+asyncpg://postgres@/postgres?host={tmp_path / 'pg'}"
    assert bootstrap.startswith("127.0.0.1:")
    assert _refuses(int(bootstrap.split(":")[1]))
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_broker_uses_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(tmp_path, port=port)
    try:
        assert broker.start() == f"127.0.0.1:{port}"
    finally:
        broker.stop()
    assert _refuses(port)
