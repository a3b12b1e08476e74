"""Per-deployment job overrides: applied from env or TOML, and refused at start when wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.app import configured_jobs
from service.cli.main import app
from service.config import Settings
from service.engine.clock import Wanted, simulate, tick
from service.engine.jobs import find_job
from service.errors import ConfigError
from service.workflows.claims.workflow import WORKFLOW as CLAIMS

JOB = "claims.release-orphaned"


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ({"cron": "0 25 * * *"}, "cron", "'0 25 * * *'"),
        ({"cron": "every day"}, "cron", "'every day'"),
        ({"timezone": "Europe/Bielefeld"}, "timezone", "'Europe/Bielefeld'"),
    ],
)
def test_a_bad_schedule_fails_at_start_naming_job_field_and_value(
    override: dict[str, str], field: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        configured_jobs(Settings(jobs={JOB: override}))
    message = str(caught.value)
    assert f"job {JOB!r}" in message and f'jobs."{JOB}".{field}' in message and value in message


def test_an_override_for_an_unknown_job_fails_and_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'claims\.release-orphand'.*known jobs: .*claims"):
        configured_jobs(Settings(jobs={"claims.release-orphand": {"cron": "0 4 * * *"}}))


def test_env_overrides_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "JOBSTREAM_JOBS",
        '{"claims.release-orphaned": {"cron": "0 4 * * *", "timezone": "Europe/Berlin", '
        '"retry_delays_s": [5, 10], "overlap": "queue"}}',
    )
    job = find_job(configured_jobs(Settings()), JOB)
    assert (job.cron, job.timezone, job.retry_delays_s, job.overlap) == (
        "0 4 * * *",
        "Europe/Berlin",
        (5.0, 10.0),
        "queue",
    )
    assert job.catchup_window_s == 3600  # untouched fields keep the declared value


def test_toml_overrides_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobstream.toml").write_text(
        '[jobs."claims.release-orphaned"]\ncron = "15 2 * * *"\nenabled = false\n'
    )
    monkeypatch.chdir(tmp_path)
    job = find_job(configured_jobs(Settings()), JOB)
    assert job.cron == "15 2 * * *" and job.enabled is False


def test_simulate_lists_slots_in_time_order_and_skips_disabled_jobs() -> None:
    settings = Settings(jobs={"engine.prune-inbox": {"enabled": False}})
    jobs = configured_jobs(settings, [CLAIMS])  # the engine's jobs and the claims workflow's
    fired = simulate(jobs, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 28, 23, tzinfo=UTC))
    assert [(j.name, s.hour) for j, s in fired] == [
        ("engine.prune-outbox", 2),
        (JOB, 3),
        ("engine.health-check", 7),
    ]


def test_tick_ids_are_derived_from_schedule_and_slot() -> None:
    s = Settings()
    job = find_job(configured_jobs(s), JOB)
    slot = datetime(2026, 3, 28, 3, tzinfo=UTC)
    first, again = tick(s, Wanted(job, "", "UTC"), slot), tick(s, Wanted(job, "", "UTC"), slot)
    assert first.id == again.id and first.key == JOB and first.time == slot
    assert tick(s, Wanted(job, "eu", "Europe/Berlin"), slot).id != first.id


def test_clock_simulate_prints_the_dst_shifted_slot() -> None:
    result = CliRunner().invoke(
        app,
        ["clock", "--simulate", "2026-03-28T00:00", "2026-03-30T00:00", "--job", JOB],
        env={"JOBSTREAM_JOBS": '{"claims.release-orphaned": {"cron": "30 2 * * *", '
             '"timezone": "Europe/Berlin"}}', "COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2026-03-29 03:00:00 CEST" in result.output  # 02:30 did not exist that night
    assert "2026-03-28 02:30:00 CET" in result.output and "2 slot(s)" in result.output


def test_clock_simulate_names_a_bad_flag() -> None:
    result = CliRunner().invoke(app, ["clock", "--simulate", "yesterday", "2026-03-30"])
    assert result.exit_code == 2 and "--simulate FROM" in result.output
