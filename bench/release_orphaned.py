"""release-orphaned: N orphaned claims released with their event_log and outbox rows."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from rich.table import Table

from bench.common import bench_stack, console, fresh_database, machine, peak_rss_mb
from service.config import Settings
from service.db.session import create_engine
from service.engine.workflow import JobContext
from service.workflows.claims.jobs import ReleaseParams, release_orphaned

SEED = sa.text(
    """
    INSERT INTO members (id, name) SELECT 'm' || g, 'Reviewer ' || g FROM generate_series(1, 500) g;
    """
)
SEED_TASKS = sa.text(
    "INSERT INTO tasks (id, title) SELECT 't' || g, 'Task ' || g FROM generate_series(1, 1000) g"
)
SEED_CLAIMS = sa.text(
    """
    INSERT INTO claims (id, task_id, member_id, status, reviewer_id, submitted_at,
                        review_started_at, updated_at)
    SELECT 'c' || g, 't' || (g % 1000 + 1), 'm' || (g % 500 + 1), 'under_review',
           'm' || ((g + 7) % 500 + 1), now() - interval '30 days',
           now() - make_interval(days => 8 + g % 12), now() - make_interval(days => 8 + g % 12)
    FROM generate_series(1, :n) g
    """
)


async def _one(settings: Settings, n: int) -> tuple[int, float]:
    url = await fresh_database(settings.require_database_url(), "jobstream_bench")
    engine = create_engine(settings, url=url)
    try:
        async with engine.begin() as conn:
            await conn.execute(SEED)
            await conn.execute(SEED_TASKS)
            await conn.execute(SEED_CLAIMS, {"n": n})
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(sa.text("VACUUM ANALYZE claims"))
        ctx = JobContext(datetime.now(UTC), "manual", "bench", ReleaseParams(), False, settings)
        started = time.perf_counter()
        async with engine.begin() as conn:
            result = await release_orphaned(conn, ctx)
        elapsed = time.perf_counter() - started
        async with engine.connect() as conn:
            logged = (await conn.execute(sa.text("SELECT count(*) FROM event_log"))).scalar_one()
            queued = (await conn.execute(sa.text("SELECT count(*) FROM outbox"))).scalar_one()
        assert result.affected == n == logged == queued, (result.affected, n, logged, queued)
        return result.affected, elapsed
    finally:
        await engine.dispose()


def main(settings: Settings, counts: list[int]) -> list[tuple[int, float]]:
    """Release each count of claims; cost per claim relative to the first shows linearity."""
    with bench_stack(settings) as s:
        results = [asyncio.run(_one(s, n)) for n in counts]
    table = Table(title=f"release-orphaned: one set-based job ({machine()})")
    for col in (
        "claims",
        "seconds",
        "claims/s",
        "event_log + outbox rows",
        "cost per claim vs first (1.00 = linear)",
    ):
        table.add_column(col, justify="right")
    base = results[0][1] / results[0][0]
    for released, secs in results:
        table.add_row(
            f"{released:,}",
            f"{secs:.2f}",
            f"{released / secs:,.0f}",
            f"{2 * released:,}",
            f"{secs / released / base:.2f}×",
        )
    table.caption = f"in-process job; harness peak RSS so far {peak_rss_mb():,.0f} MB"
    console.print(table)
    return results
