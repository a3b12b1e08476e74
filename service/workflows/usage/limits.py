"""Thresholds: the warning notification and the limit's auto-actions, once per period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.envelope import CloudEvent
from schemas.notifications import NOTIFICATIONS_TOPIC, NotificationRequested
from schemas.usage import USAGE_OUTBOUND_TOPIC, LimitExceeded
from service.engine.uow import UnitOfWork
from service.workflows.usage import rules
from service.workflows.usage.tables import api_keys, audit_log, counters, feature_flags

ACTOR = "jobstream:usage-limits"


def counter_id(key: rules.CounterKey) -> str:
    start = key.period_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"{key.organization_id}/{key.metric}/{start}"


def _source(uow: UnitOfWork) -> str:
    return uow.settings.source if uow.settings is not None else "jobstream"


def _event(cls: type[CloudEvent], uow: UnitOfWork, id_: str, at: datetime, data: Any) -> Any:
    return cls.model_validate(
        {
            "id": id_,
            "source": _source(uow),
            "time": at,
            "subject": data.get("organization_id"),
            "data": data,
        }
    )


def _notification(
    uow: UnitOfWork, id_: str, at: datetime, to: str, template: str, data: Any
) -> Any:
    payload = {"channel": "email", "recipient": to, "template": template, "data": data}
    return _event(NotificationRequested, uow, id_, at, payload)


async def _set_flag(uow: UnitOfWork, table: sa.Table, key: dict[str, str], **values: Any) -> None:
    stmt = pg_insert(table).values(**key, **values)
    await uow.conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))


async def _apply(
    uow: UnitOfWork, action: rules.PlannedAction, at: datetime, meta: dict[str, Any]
) -> None:
    """Carry out one auto-action and write it to the audit log with its reason."""
    org = meta["organization_id"]
    if action.kind == "disable_feature":
        key = {"organization_id": org, "flag": action.target}
        await _set_flag(uow, feature_flags, key, enabled=False, reason=action.reason, updated_at=at)
        target_type = "feature_flag"
    elif action.kind == "block_api_key":
        key = {"organization_id": org, "key_id": action.target}
        await _set_flag(uow, api_keys, key, active=False, reason=action.reason, updated_at=at)
        target_type = "api_key"
    else:
        note = _notification(uow, action.id, at, action.target, "usage.limit_reached", meta)
        uow.publish(NOTIFICATIONS_TOPIC, note)
        target_type = "recipient"
    await uow.conn.execute(
        pg_insert(audit_log)
        .values(
            id=action.id,
            occurred_at=at,
            organization_id=org,
            actor=ACTOR,
            action=f"usage.{action.kind}",
            target_type=target_type,
            target_id=action.target,
            reason=action.reason,
            details=meta,
            source=_source(uow),
        )
        .on_conflict_do_nothing()
    )
    uow.record(
        entity_type="usage_organization",
        entity_id=org,
        event_type="usage.action.applied",
        occurred_at=at,
        actor=ACTOR,
        metadata={
            "audit_id": action.id,
            "kind": action.kind,
            "target": action.target,
            "reason": action.reason,
            **meta,
        },
    )


async def fire(
    uow: UnitOfWork, counter: rules.Counter, limit: rules.Limit | None, *, at: datetime
) -> None:
    """Send the warning and run the limit's actions if this counter just crossed them."""
    warn, reach = rules.crossings(counter, limit)
    if not (warn or reach):
        return
    assert limit is not None
    k = counter.key
    c = counters.c
    await uow.conn.execute(
        counters.update()
        .where(c.organization_id == k.organization_id, c.metric == k.metric)
        .where(c.period_start == k.period_start)
        .values(warned_at=at if warn else c.warned_at, limited_at=at if reach else c.limited_at)
    )
    meta = {
        "organization_id": k.organization_id,
        "metric": k.metric,
        "period": counter.period,
        "period_start": k.period_start.isoformat(),
        "value": counter.value,
        "limit": limit.limit,
        "warning_pct": limit.warning_pct,
    }
    entity = counter_id(k)
    if warn:
        uow.record(
            entity_type="usage_counter",
            entity_id=entity,
            event_type="usage.warning.sent",
            occurred_at=at,
            actor=ACTOR,
            metadata=meta,
        )
        note = _notification(uow, rules.warning_id(k), at, limit.contact, "usage.warning", meta)
        uow.publish(NOTIFICATIONS_TOPIC, note)
    if not reach:
        return
    planned = rules.plan_actions(counter, limit)
    exceeded = {**meta, "actions": [{"kind": a.kind, "target": a.target} for a in planned]}
    exceeded.pop("warning_pct")
    uow.record(
        entity_type="usage_counter",
        entity_id=entity,
        event_type="usage.limit.exceeded",
        occurred_at=at,
        actor=ACTOR,
        metadata=exceeded,
    )
    event_id = str(uuid.uuid5(rules.NS, f"exceeded|{entity}"))
    uow.publish(USAGE_OUTBOUND_TOPIC, _event(LimitExceeded, uow, event_id, at, exceeded))
    for action in planned:
        await _apply(uow, action, at, meta)
