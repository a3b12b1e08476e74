"""Celery side of the peers benchmark: the job as a task, Redis as the broker.

Celery's defaults (early acknowledgement, prefetch 4, no result backend), one
database connection per worker process. ``BENCH_REDIS``, ``BENCH_QUEUE`` and
``BENCH_PG`` (a libpq URL) configure it.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from celery import Celery

from bench import peer_job

app = Celery("bench_peers", broker=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench-peers"),
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)
_conn: Any = None


def connection() -> psycopg.Connection[Any]:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["BENCH_PG"])
    return _conn  # type: ignore[no-any-return]


@app.task(name="peer_job")
def run_job(job_id: str, item_id: str) -> None:
    conn = connection()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(peer_job.CLAIM, (job_id, item_id))
        if cur.fetchone() is None:
            return  # this job ran before
        cur.execute(peer_job.UPDATE, (item_id,))
        cur.execute(peer_job.AUDIT, (job_id, item_id))
