"""Procrastinate side of the peers benchmark: the job as a task, PostgreSQL as the queue.

One psycopg connection pool for the task's own statements, as an application
would have. ``BENCH_PG`` (a libpq URL) and ``BENCH_QUEUE`` configure it.
"""

from __future__ import annotations

import os

import procrastinate
from psycopg_pool import AsyncConnectionPool

from bench import peer_job

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_PG", ""))
)
_pool: AsyncConnectionPool | None = None


async def pool() -> AsyncConnectionPool:
    global _pool
    if _pool is None:
        _pool = AsyncConnectionPool(os.environ["BENCH_PG"], min_size=1, max_size=10, open=False)
        await _pool.open()
    return _pool


@app.task(name="peer_job", queue=os.environ.get("BENCH_QUEUE", "bench-peers"))
async def run_job(job_id: str, item_id: str) -> None:
    async with (await pool()).connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.execute(peer_job.CLAIM, (job_id, item_id))
        if await cur.fetchone() is None:
            return  # this job ran before
        await cur.execute(peer_job.UPDATE, (item_id,))
        await cur.execute(peer_job.AUDIT, (job_id, item_id))
