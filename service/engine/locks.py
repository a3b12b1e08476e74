"""PostgreSQL session advisory locks: one active clock or relay, hot standbys waiting."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("jobstream.locks")


class AdvisoryLock:
    """``async with AdvisoryLock(...) as held`` waits until the lock is ours or ``stop`` is set.

    The lock lives as long as the dedicated connection; if this process dies, PostgreSQL
    drops the session and a standby takes over at its next try.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        key: int,
        name: str,
        stop: asyncio.Event,
        retry_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.key = key
        self.name = name
        self.stop = stop
        self.retry_s = retry_s
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> bool:
        announced = False
        while not self.stop.is_set():
            try:
                conn = await self.engine.connect()
                got = (
                    await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
                ).scalar_one()
                await conn.commit()
                if got:
                    self._conn = conn
                    log.info("lock acquired", extra={"action": "lock_acquired", "lock": self.name})
                    return True
                await conn.close()
                if not announced:
                    log.info("standing by", extra={"action": "standby", "lock": self.name})
                    announced = True
            except Exception:
                log.exception("lock attempt failed", extra={"action": "lock_error"})
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=self.retry_s)
            except TimeoutError:
                pass
        return False

    async def alive(self) -> bool:
        """Is the lock still ours? False once its connection died (e.g. a database restart),
        after which another instance may hold it: stop acting and acquire it again."""
        if self._conn is None:
            return False
        try:
            await self._conn.execute(sa.text("SELECT 1"))
            await self._conn.commit()
        except Exception:
            log.warning("lock connection lost", extra={"action": "lock_lost", "lock": self.name})
            return False
        return True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                await self._conn.commit()
            except Exception:  # a dead connection released the lock with it
                await self._conn.invalidate()
            finally:
                await self._conn.close()
                self._conn = None
