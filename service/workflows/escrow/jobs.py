"""Escrow jobs: release held escrows, expire matches, remind and default cycles, leaderboard.

Each runs one statement from :mod:`queries` in the caller's transaction and returns
exactly the rows it changed; a dry run is the same statement rolled back by the engine.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.escrow import ESCROW_OUTBOUND_TOPIC
from service.engine.sql import bind, plain
from service.engine.workflow import JobContext, JobResult
from service.workflows.escrow import queries, rules

CHANNEL = "email"


def _params(ctx: JobContext, **extra: Any) -> dict[str, Any]:
    return bind(ctx, ESCROW_OUTBOUND_TOPIC, channel=CHANNEL, **extra)


async def _run(
    conn: AsyncConnection, statement: sa.TextClause, params: dict[str, Any]
) -> JobResult:
    rows = [plain(r) for r in await conn.execute(statement, params)]
    return JobResult(len(rows), rows)


async def release_escrows(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Release every escrow whose 48 h hold has passed at the slot time.

    The amount moves from the recipient's receivable to their fiat balance (no money
    is created or lost), the donor earns 50 charity coins, and the recipient's cycle
    funded by the donation becomes ``obligated``. One row per released escrow.
    """
    return await _run(conn, queries.RELEASE, _params(ctx, coins=rules.DONOR_COINS))


async def expire_matches(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Pending matches 24 h past creation become ``expired``; each donor is notified."""
    return await _run(conn, queries.EXPIRE_MATCHES, _params(ctx))


async def remind_and_default_cycles(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Remind obligated cycles due in exactly 7 days (once), default the overdue ones.

    A defaulted cycle costs its user 0.10 of trust score, never below 0. Days are
    counted in the job's timezone.
    """
    params = _params(
        ctx,
        tz=ctx.timezone,
        reminder_days=rules.REMINDER_DAYS,
        penalty=rules.DEFAULT_PENALTY,
    )
    return await _run(conn, queries.CYCLES, params)


async def recalculate_leaderboard(conn: AsyncConnection, ctx: JobContext) -> JobResult:
    """Expire boosts, recompute every user's score and dense rank, save what changed."""
    return await _run(conn, queries.LEADERBOARD, _params(ctx))
