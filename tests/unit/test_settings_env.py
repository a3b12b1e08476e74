"""Settings.as_env: a child process given these variables reads the same Settings."""

from __future__ import annotations

import os

import pytest

from service.config import Settings


def test_a_child_process_reads_back_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOBSTREAM_"):
            monkeypatch.delenv(name)
    original = Settings(
        database_url="postgresql+asyncpg://u:secret@db:5432/x",
        kafka_idempotent_producer=False,
        retry_delays_s=[0.5, 1.5],
        topic_prefix="p.",
        crash_at="relay.after_publish:2",
        log_json=False,
    )
    env = original.as_env(group_id="other")
    assert env["JOBSTREAM_DATABASE_URL"] == "postgresql+asyncpg://u:secret@db:5432/x"
    assert "JOBSTREAM_BATCH_MAX_RECORDS" not in env  # defaults are left to the child
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.with_overrides(group_id=original.group_id) == original
    assert child.group_id == "other"
