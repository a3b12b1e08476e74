"""docker-compose.yml is the production shape: real settings only, one shared environment,
a health check on every role, and a hot standby for each singleton (clock, relay)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("worker", "relay", "clock", "api")
SINGLETONS = ("clock", "relay")
#: What a role may set on top of the shared environment (the api's listen port).
ROLE_ONLY = {"api": {"JOBSTREAM_API_PORT"}}


def load() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def roles(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services by the jobstream command they run (worker, relay, clock, api, migrate)."""
    return {s.get("command", [None])[0]: s for s in compose["services"].values()}


def standby_problems(compose: dict[str, Any]) -> list[str]:
    """Each singleton runs at least two replicas: one active, one waiting on its lock."""
    problems = []
    by_role = roles(compose)
    for role in SINGLETONS:
        replicas = (by_role[role].get("deploy") or {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 2:
            problems.append(f"{role}: deploy.replicas is {replicas!r}, want 2 or more")
    return problems


def environment_problems(compose: dict[str, Any]) -> list[str]:
    """Every role (and migrate) has exactly the shared environment of the x-jobstream anchor."""
    shared: dict[str, Any] = compose["x-jobstream"]["environment"]
    problems = []
    by_role = roles(compose)
    for role in (*ROLES, "migrate"):
        env: dict[str, Any] = by_role[role].get("environment") or {}
        for key, value in shared.items():
            if key not in env:
                problems.append(f"{role}: {key} missing")
            elif env[key] != value:
                problems.append(f"{role}: {key}={env[key]!r}, shared {value!r}")
        for key in sorted(set(env) - set(shared) - ROLE_ONLY.get(role, set())):
            problems.append(f"{role}: {key} is set for this role only")
    return problems


def test_every_compose_variable_is_a_settings_field() -> None:
    compose = load()
    seen: set[str] = set()
    for name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("JOBSTREAM_"):
                seen.add(key)
                field = key.removeprefix("JOBSTREAM_").lower()
                assert field in Settings.model_fields, f"{name}: {key} is not a Settings field"
    assert "JOBSTREAM_DATABASE_URL" in seen and "JOBSTREAM_KAFKA_BOOTSTRAP_SERVERS" in seen
    by_role = roles(compose)
    assert {*ROLES, "migrate"} <= set(by_role)
    for role in ROLES:
        assert "healthcheck" in by_role[role], f"{role} has no health check"
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


def test_clock_and_relay_run_a_hot_standby() -> None:
    assert standby_problems(load()) == []


def test_every_role_shares_one_environment() -> None:
    assert environment_problems(load()) == []


def test_the_checks_catch_a_broken_compose_file() -> None:
    """Each check fails on a compose file broken the way it guards against."""
    good = load()

    def broken(role: str, change: Any) -> dict[str, Any]:
        compose = copy.deepcopy(good)
        services = compose["services"]
        name = next(n for n, s in services.items() if s.get("command", [None])[0] == role)
        services[name] = copy.deepcopy(services[name])  # YAML aliases share one dict: unshare
        change(services[name])
        return compose

    def set_env(key: str, value: str) -> Any:
        return lambda s: s["environment"].__setitem__(key, value)

    assert standby_problems(broken("clock", lambda s: s.pop("deploy"))) == [
        "clock: deploy.replicas is 1, want 2 or more"
    ]
    assert standby_problems(broken("relay", lambda s: s["deploy"].update(replicas=1)))
    assert environment_problems(broken("relay", set_env("JOBSTREAM_GROUP_ID", "other")))
    assert environment_problems(broken("worker", set_env("JOBSTREAM_RELAY_BATCH_SIZE", "10")))
    assert environment_problems(broken("clock", lambda s: s.pop("environment")))
    assert environment_problems(
        broken("api", lambda s: s["environment"].pop("JOBSTREAM_DATABASE_URL"))
    )
    assert environment_problems(broken("api", set_env("JOBSTREAM_API_PORT", "9000"))) == []
