"""Alembic, driven from code: upgrade to head and check that a database is at head.

Workflows add their migrations in parallel branches, so the revision graph may have
several heads until they are linked; "head" here means all of them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The head revision, or the sorted heads joined by ``+`` when there are several."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads
    return "+".join(sorted(heads))


def upgrade(url: str, revision: str = "heads") -> None:
    """Upgrade the database at ``url`` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)


async def current_revision(conn: AsyncConnection) -> str | None:
    def _current(sync_conn: sa.Connection) -> str | None:
        heads = MigrationContext.configure(sync_conn).get_current_heads()
        return "+".join(sorted(heads)) or None

    return await conn.run_sync(_current)


async def ensure_at_head(engine: AsyncEngine) -> None:
    """Refuse to run on a database that is not migrated to head, and say how to fix it."""
    async with engine.connect() as conn:
        current = await current_revision(conn)
    head = head_revision()
    if current != head:
        raise ConfigError(
            f"database schema is at {current or 'nothing (empty database)'}, "
            f"this jobstream needs {head}: run `jobstream migrate` first"
        )
