"""docker-compose.yml sets only variables that Settings knows."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_compose_variable_is_a_settings_field() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    seen: set[str] = set()
    for name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("JOBSTREAM_"):
                seen.add(key)
                field = key.removeprefix("JOBSTREAM_").lower()
                assert field in Settings.model_fields, f"{name}: {key} is not a Settings field"
    assert "JOBSTREAM_DATABASE_URL" in seen and "JOBSTREAM_KAFKA_BOOTSTRAP_SERVERS" in seen
    roles = {s.get("command", [None])[0]: s for s in compose["services"].values()}
    assert {"worker", "relay", "clock", "api", "migrate"} <= set(roles)
    for role in ("worker", "relay", "clock", "api"):
        assert "healthcheck" in roles[role], f"{role} has no health check"
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
