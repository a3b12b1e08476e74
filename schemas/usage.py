"""Usage metering events: usage records, limits with auto-actions, flags and API keys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from schemas.envelope import CloudEvent, Id, Payload

USAGE_INBOUND_TOPIC = "usage.events"
USAGE_OUTBOUND_TOPIC = "usage.out"

_T = "2026-11-02T14:00:00Z"

Metric = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.-]*$")]
Period = Literal["hourly", "daily", "monthly"]
Count = Annotated[int, Field(ge=0, le=10**15)]


def _example(type_: str, data: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "5d1e8c3a-0b7f-4f4e-9a3d-7c2e1b0a9f21",
                    "source": "/api-gateway",
                    "type": type_,
                    "time": _T,
                    "data": data,
                }
            ]
        }
    )


class UsageRecordedData(Payload):
    """``quantity`` units of ``metric`` used by an organization at the event's time."""

    organization_id: Id
    metric: Metric
    quantity: Annotated[int, Field(ge=1, le=10**9)] = 1


class AutoAction(Payload):
    """What to do when the limit is reached: ``target`` is the flag, key id or recipient."""

    kind: Literal["disable_feature", "block_api_key", "notify"]
    target: Id


class LimitConfiguredData(Payload):
    """The organization's limit on one metric per period, and what crossing it does.

    ``contact`` gets the warning at ``warning_pct`` % of the limit; ``actions`` run
    once per period when usage reaches ``limit``.
    """

    organization_id: Id
    metric: Metric
    period: Period
    limit: Annotated[int, Field(ge=1, le=10**15)]
    warning_pct: Annotated[int, Field(ge=1, le=100)] = 80
    contact: Id
    actions: Annotated[list[AutoAction], Field(max_length=20)] = Field(default_factory=list)


class FeatureFlagSetData(Payload):
    """An organization's feature switched on or off (e.g. re-enabled by an admin)."""

    organization_id: Id
    flag: Id
    enabled: bool


class ApiKeySetData(Payload):
    """An organization's API key issued, re-activated (``active``) or revoked."""

    organization_id: Id
    key_id: Id
    active: bool


class LimitExceededData(Payload):
    """Outbound: an organization reached its limit for a period (once per period)."""

    organization_id: Id
    metric: Metric
    period: Period
    period_start: AwareDatetime
    value: Count
    limit: Count
    actions: list[AutoAction]


class PeriodClosedData(Payload):
    """Outbound: a period ended; its counter was archived with this final value."""

    organization_id: Id
    metric: Metric
    period: Period
    period_start: AwareDatetime
    period_end: AwareDatetime
    value: Count


_ORG = {"organization_id": "org-1", "metric": "api.calls"}
_START = "2026-11-01T00:00:00Z"


class UsageRecorded(CloudEvent):
    model_config = _example("usage.recorded", _ORG | {"quantity": 3})
    key_field = "organization_id"
    type: Literal["usage.recorded"] = "usage.recorded"
    data: UsageRecordedData


class LimitConfigured(CloudEvent):
    model_config = _example(
        "usage.limit.configured",
        _ORG
        | {
            "period": "monthly",
            "limit": 100000,
            "warning_pct": 80,
            "contact": "billing@org-1",
            "actions": [
                {"kind": "disable_feature", "target": "bulk-export"},
                {"kind": "notify", "target": "cto@org-1"},
            ],
        },
    )
    key_field = "organization_id"
    type: Literal["usage.limit.configured"] = "usage.limit.configured"
    data: LimitConfiguredData


class FeatureFlagSet(CloudEvent):
    model_config = _example(
        "usage.feature_flag.set",
        {"organization_id": "org-1", "flag": "bulk-export", "enabled": True},
    )
    key_field = "organization_id"
    type: Literal["usage.feature_flag.set"] = "usage.feature_flag.set"
    data: FeatureFlagSetData


class ApiKeySet(CloudEvent):
    model_config = _example(
        "usage.api_key.set", {"organization_id": "org-1", "key_id": "key-9", "active": True}
    )
    key_field = "organization_id"
    type: Literal["usage.api_key.set"] = "usage.api_key.set"
    data: ApiKeySetData


class LimitExceeded(CloudEvent):
    model_config = _example(
        "usage.limit.exceeded",
        _ORG
        | {
            "period": "monthly",
            "period_start": _START,
            "value": 100002,
            "limit": 100000,
            "actions": [{"kind": "disable_feature", "target": "bulk-export"}],
        },
    )
    key_field = "organization_id"
    type: Literal["usage.limit.exceeded"] = "usage.limit.exceeded"
    data: LimitExceededData


class PeriodClosed(CloudEvent):
    model_config = _example(
        "usage.period.closed",
        _ORG
        | {
            "period": "monthly",
            "period_start": _START,
            "period_end": "2026-12-01T00:00:00Z",
            "value": 123456,
        },
    )
    key_field = "organization_id"
    type: Literal["usage.period.closed"] = "usage.period.closed"
    data: PeriodClosedData


#: Everything an upstream service may publish on ``usage.events``.
UsageInbound = Annotated[
    UsageRecorded | LimitConfigured | FeatureFlagSet | ApiKeySet,
    Field(discriminator="type"),
]

INBOUND = (UsageRecorded, LimitConfigured, FeatureFlagSet, ApiKeySet)
OUTBOUND = (LimitExceeded, PeriodClosed)
