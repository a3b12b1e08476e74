"""`jobstream jobs ...` against a real database: what operators type, what they read."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from service.cli.main import app
from service.config import Settings
from service.db.session import create_engine

pytestmark = pytest.mark.integration

JOB = "claims.release-orphaned"


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    assert settings.database_url is not None
    env = {"JOBSTREAM_DATABASE_URL": settings.database_url.get_secret_value(), "COLUMNS": "250"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def rows(settings: Settings, sql: str) -> list[sa.Row[object]]:
    async def query() -> list[sa.Row[object]]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                return list(await conn.execute(sa.text(sql)))
        finally:
            await engine.dispose()

    return asyncio.run(query())


def test_backfill_runs_each_past_slot_once_with_the_slot_as_now(settings: Settings) -> None:
    code, out = cli(
        settings, "jobs", "backfill", JOB, "--from", "2026-10-01T00:00", "--to", "2026-10-03T12:00"
    )
    assert code == 0, out
    assert "3 succeeded" in out
    runs = rows(settings, "SELECT slot, trigger, actor, status FROM job_runs ORDER BY slot")
    assert [(r.slot.day, r.slot.hour, r.trigger, r.actor, r.status) for r in runs] == [
        (d, 3, "backfill", "cli", "succeeded") for d in (1, 2, 3)
    ]

    code, out = cli(
        settings, "jobs", "backfill", JOB, "--from", "2026-10-01T00:00", "--to", "2026-10-03T12:00"
    )
    assert code == 0 and "3 duplicate" in out  # each slot of a range runs once

    code, out = cli(settings, "jobs", "history", JOB)
    assert code == 0 and out.count("backfill") == 3


def test_errors_name_the_flag(settings: Settings) -> None:
    code, out = cli(settings, "jobs", "backfill", JOB, "--from", "soon", "--to", "2026-10-03")
    assert code == 2 and "--from" in out and "'soon'" in out
    code, out = cli(settings, "jobs", "backfill", JOB, "--from", "2026-10-03", "--to", "2026-10-01")
    assert code == 2 and "--to" in out and "before" in out
    code, out = cli(settings, "jobs", "run", JOB, "--threshold-days", "0")
    assert code == 2 and "--threshold-days" in out
    code, out = cli(settings, "jobs", "history", "claims.nope")
    assert code == 2 and "known jobs" in out


def test_list_pause_resume(settings: Settings) -> None:
    code, out = cli(settings, "jobs", "pause", JOB, "--reason", "migration")
    assert code == 0 and "paused" in out
    code, out = cli(settings, "jobs", "list")
    assert code == 0
    line = next(line for line in out.splitlines() if JOB in line)
    assert "0 3 * * *" in line and "by cli" in line
    assert rows(settings, "SELECT reason FROM job_pauses")[0].reason == "migration"
    code, out = cli(settings, "jobs", "resume", JOB)
    assert code == 0 and "resumed" in out
    _, out = cli(settings, "jobs", "list")
    line = next(line for line in out.splitlines() if "engine.health-check" in line)
    assert "07:00:00 UTC" in line  # the next run, in the job's timezone
