"""Fixture for the clock and job-runner tests: a table the test jobs leave traces in.

``job_effects`` gets one row per run, in the run's transaction: it shows what
actually ran, independently of job_runs.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
async def effects(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TABLE job_effects (id bigserial PRIMARY KEY, job text NOT NULL, "
                "scope text, slot timestamptz NOT NULL, actor text, "
                "at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
        )
    return engine
