"""The per-(job, scope) lock and the executors' wake-up call.

The lock is a PostgreSQL session advisory lock (two int4 keys: a namespace and a
hash of job and scope) held by the connection that runs the job. Holding it *is*
"a run of this job is running": the overlap policy tests it, and the stalled-run
sweep reads ``pg_locks`` to see whether a ``running`` row's runner still holds it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("jobstream.jobs")

LOCK_NAMESPACE = 7_420_010
NOTIFY_CHANNEL = "jobstream_jobs"
#: Who runs a job: recorded in job_runs.worker.
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def lock_key(job: str, scope: str) -> int:
    """The second int4 of the (job, scope) lock; ``LOCK_KEY_SQL`` computes the same."""
    return int(hashlib.md5(f"{job}|{scope}".encode()).hexdigest()[:7], 16)


#: ``lock_key`` in SQL, over two text expressions (for reading pg_locks).
LOCK_KEY_SQL = "('x' || substr(md5({job} || '|' || {scope}), 1, 7))::bit(28)::int"

#: The (job, scope) lock of job_runs row ``r`` is held by the backend ``r.lock_pid``.
LOCK_HELD_SQL = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    f"AND l.pid = r.lock_pid AND l.classid = {LOCK_NAMESPACE}::oid "
    f"AND l.objid = ({LOCK_KEY_SQL.format(job='r.job', scope='r.scope')})::oid "
    "AND l.objsubid = 2)"
)


def _keys(job: str, scope: str) -> dict[str, int]:
    return {"ns": LOCK_NAMESPACE, "key": lock_key(job, scope)}


async def try_lock(conn: AsyncConnection, job: str, scope: str) -> bool:
    stmt = sa.text("SELECT pg_try_advisory_lock(:ns, :key)")
    return bool((await conn.execute(stmt, _keys(job, scope))).scalar())


async def wait_lock(conn: AsyncConnection, job: str, scope: str) -> None:
    """Block until the running run of this job finishes (overlap policy ``queue``)."""
    await conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :key)"), _keys(job, scope))


async def release(conn: AsyncConnection, job: str, scope: str, locked: bool) -> None:
    """Unlock and return the connection; a broken one is discarded (which unlocks too).

    A pooled connection keeps session locks, so one that cannot unlock is never reused.
    """
    try:
        if locked and not conn.invalidated:
            await conn.rollback()
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), _keys(job, scope))
            await conn.commit()
    except Exception:
        log.warning("could not unlock; discarding the connection", extra={"action": "unlock"})
        await conn.invalidate()
    finally:
        await conn.close()


async def notify(conn: AsyncConnection) -> None:
    """Wake every executor (delivered when the transaction commits)."""
    await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
