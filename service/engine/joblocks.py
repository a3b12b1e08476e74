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
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables import job_runs

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
    """Take the (job, scope) lock for this session if it is free; never waits."""
    stmt = sa.text("SELECT pg_try_advisory_lock(:ns, :key)")
    return bool((await conn.execute(stmt, _keys(job, scope))).scalar())


async def wait_lock(conn: AsyncConnection, job: str, scope: str) -> None:
    """Block until the running run of this job finishes (overlap policy ``queue``)."""
    await conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :key)"), _keys(job, scope))


async def release(conn: AsyncConnection, job: str, scope: str, locked: bool) -> None:
    """Unlock, let the schedule's next queued run go, and return the connection.

    Handing over *after* unlocking closes a race: a claim that found the lock still
    held just before is put back to wait, and this update (waiting for that claim's
    row lock) makes it due again at once. A broken connection is discarded instead,
    which unlocks too; a pooled connection would keep its session locks.
    """
    try:
        if locked and not conn.invalidated:
            await conn.rollback()
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), _keys(job, scope))
            await hand_over(conn, job, scope)
            await conn.commit()
    except Exception:
        log.warning("could not unlock; discarding the connection", extra={"action": "unlock"})
        await conn.invalidate()
    finally:
        await conn.close()


async def overlaps(conn: AsyncConnection, job: str, scope: str, slot: datetime) -> bool:
    """Whether the run holding the lock was already running at ``slot``.

    Only then is ``slot`` a run *beside* it, which overlap ``skip`` skips. A caught-up
    or backfilled slot from before that run started waits its turn instead, so a
    burst of late slots runs one after another rather than one of them at all.
    """
    started = (
        await conn.execute(
            sa.select(sa.func.min(job_runs.c.started_at)).where(
                job_runs.c.job == job, job_runs.c.scope == scope, job_runs.c.status == "running"
            )
        )
    ).scalar()
    return started is not None and started <= slot


async def hand_over(conn: AsyncConnection, job: str, scope: str) -> None:
    """The schedule's next queued run (its head: runs start in slot order) may go now.

    No condition on ``not_before`` on purpose: a claim that is putting that run back
    at this very moment holds its row lock, and only a row that matches without
    looking at ``not_before`` makes this update wait for it and then undo the wait.
    """
    head = (
        sa.select(job_runs.c.id)
        .where(job_runs.c.job == job, job_runs.c.scope == scope, job_runs.c.status == "queued")
        .order_by(job_runs.c.slot)
        .limit(1)
        .scalar_subquery()
    )
    await conn.execute(
        job_runs.update()
        .where(job_runs.c.id == head, job_runs.c.status == "queued")
        .values(not_before=sa.func.least(job_runs.c.not_before, sa.func.now()))
    )
    await notify(conn)


async def notify(conn: AsyncConnection) -> None:
    """Wake every executor (delivered when the transaction commits)."""
    await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
