"""`jobstream bench pipeline --events 2000` runs end to end on the test stack.

A smoke test, not a timing test: every mode must finish and its counts and claim
states must add up (the bench exits non-zero otherwise); the figures are printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_pipeline_bench_runs_every_mode_and_counts_add_up(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    server_url, kafka = stack
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTREAM_")}
    env |= {
        "JOBSTREAM_DATABASE_URL": server_url,
        "JOBSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "JOBSTREAM_KAFKA_IDEMPOTENT_PRODUCER": "false",
        "JOBSTREAM_KAFKA_PARTITIONS": "3",
        "JOBSTREAM_STATE_DIR": str(tmp_path),
        "JOBSTREAM_CONFIG_FILE": str(tmp_path / "none.toml"),
        "COLUMNS": "200",
    }
    argv = [sys.executable, "-m", "service.cli.main", "bench", "pipeline", "--events", "2000"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=850)
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for mode in (
        "(a) jobstream, batch",
        "(b) jobstream, 1 msg",
        "(c) plain FastStream",
        "(d) COPY",
    ):
        row = next((line for line in done.stdout.splitlines() if mode in line), None)
        assert row is not None, f"no row for {mode}:\n{done.stdout}"
        assert "2,000" in row  # every mode measured all 2,000 events
