"""Usage demo data: three organizations with limits; one passes its warning, one its limit."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from schemas.audit import AUDIT_INBOUND_TOPIC, AuditRecorded
from schemas.envelope import CloudEvent, make
from schemas.usage import (
    USAGE_INBOUND_TOPIC,
    ApiKeySet,
    FeatureFlagSet,
    LimitConfigured,
    UsageRecorded,
)

NS = uuid.UUID("9e2d4c6b-3a1f-4e5d-8c7b-2a1f0e9d8c04")
SOURCE = "/demo"

# (organization, metric, period, limit, used so far this period, actions)
ORGS: list[tuple[str, str, str, int, int, list[dict[str, str]]]] = [
    (
        "org-acme",
        "api.calls",
        "monthly",
        1000,
        1040,
        [
            {"kind": "disable_feature", "target": "bulk-export"},
            {"kind": "block_api_key", "target": "key-acme-ci"},
            {"kind": "notify", "target": "cto@acme.example"},
        ],
    ),
    ("org-globex", "storage.gb", "daily", 500, 420, [{"kind": "notify", "target": "ops@globex"}]),
    ("org-initech", "api.calls", "hourly", 200, 40, []),
]


def _event(cls: type[CloudEvent], seed: str, time: datetime, **data: Any) -> CloudEvent:
    return make(cls, time, source=SOURCE, event_id=str(uuid.uuid5(NS, seed)), **data)


def _org_events(
    org: str,
    metric: str,
    period: str,
    limit: int,
    used: int,
    actions: list[dict[str, str]],
    now: datetime,
) -> list[CloudEvent]:
    events = [
        _event(
            FeatureFlagSet,
            f"{org}:flag",
            now - timedelta(days=40),
            organization_id=org,
            flag="bulk-export",
            enabled=True,
        ),
        _event(
            ApiKeySet,
            f"{org}:key",
            now - timedelta(days=40),
            organization_id=org,
            key_id=f"key-{org.removeprefix('org-')}-ci",
            active=True,
        ),
        _event(
            LimitConfigured,
            f"{org}:limit",
            now - timedelta(days=40),
            organization_id=org,
            metric=metric,
            period=period,
            limit=limit,
            warning_pct=80,
            contact=f"billing@{org}",
            actions=actions,
        ),
    ]
    # Usage in ten steps over the last minutes, so the period is the current one.
    step = used // 10
    for i in range(10):
        quantity = step if i < 9 else used - 9 * step
        events.append(
            _event(
                UsageRecorded,
                f"{org}:use:{i}",
                now - timedelta(minutes=10 - i),
                organization_id=org,
                metric=metric,
                quantity=quantity,
            )
        )
    events.append(
        _event(
            AuditRecorded,
            f"{org}:audit",
            now - timedelta(hours=1),
            organization_id=org,
            actor=f"admin@{org}",
            action="api_key.created",
            target_type="api_key",
            target_id=f"key-{org.removeprefix('org-')}-ci",
            reason="CI pipeline",
        )
    )
    return events


def demo_events(now: datetime) -> list[tuple[str, CloudEvent]]:
    out: list[tuple[str, CloudEvent]] = []
    for org, metric, period, limit, used, actions in ORGS:
        for event in _org_events(org, metric, period, limit, used, actions, now):
            topic = AUDIT_INBOUND_TOPIC if isinstance(event, AuditRecorded) else USAGE_INBOUND_TOPIC
            out.append((topic, event))
    return out
