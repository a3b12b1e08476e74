"""Crash points kill the process at exactly the named pass, and only when asked."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from service.config import load_settings
from service.errors import ConfigError

PROBE = """
from service.config import Settings
from service.engine.faults import crash_point
s = Settings(crash_at={spec!r})
for n in range(1, 4):
    crash_point(s, "relay.after_publish")
    crash_point(s, "processing.after_commit")
    print("passed", n, flush=True)
"""


def _run(spec: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(spec=spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_named_pass_is_killed_without_cleanup() -> None:
    result = _run("relay.after_publish:2")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split("\n")[:-1] == ["passed 1"]


def test_without_a_crash_point_nothing_happens() -> None:
    result = _run(None)
    assert result.returncode == 0 and result.stdout.count("passed") == 3


def test_an_unknown_crash_point_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown crash point 'relay\.after_publsh'"):
        load_settings(crash_at="relay.after_publsh")
