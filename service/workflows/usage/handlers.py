"""Usage handlers: configuration events one by one, usage records counted per batch.

A batch arrives in order inside one transaction (the engine has already dropped
ids its inbox has seen). Consecutive ``usage.recorded`` events are summed per
counter and written with one atomic upsert; a configuration event in between
is applied at its place, so a batch behaves exactly like its events one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.envelope import CloudEvent
from schemas.usage import ApiKeySet, AutoAction, FeatureFlagSet, LimitConfigured, UsageRecorded
from service.engine.uow import UnitOfWork
from service.workflows.usage import limits as thresholds
from service.workflows.usage import rules
from service.workflows.usage.tables import api_keys, feature_flags, limits

# Events for a period already archived (late arrivals) are added to the archive;
# everything else is added to the open counter in the same statement.
UPSERT = sa.text(
    """WITH incoming AS (
    SELECT * FROM unnest(CAST(:orgs AS text[]), CAST(:metrics AS text[]),
                         CAST(:periods AS text[]), CAST(:starts AS timestamptz[]),
                         CAST(:ends AS timestamptz[]), CAST(:quantities AS bigint[]),
                         CAST(:lasts AS timestamptz[]))
        AS i(organization_id, metric, period, period_start, period_end, quantity, last_at)
),
late AS (
    UPDATE usage_counters_archive a
    SET value = a.value + i.quantity, updated_at = GREATEST(a.updated_at, i.last_at)
    FROM incoming i
    WHERE a.organization_id = i.organization_id AND a.metric = i.metric
      AND a.period_start = i.period_start
    RETURNING a.organization_id, a.metric, a.period_start
)
INSERT INTO usage_counters AS c (organization_id, metric, period_start, period, period_end, value,
                                 updated_at)
SELECT i.organization_id, i.metric, i.period_start, i.period, i.period_end, i.quantity, i.last_at
FROM incoming i
WHERE NOT EXISTS (SELECT 1 FROM late l WHERE l.organization_id = i.organization_id
                  AND l.metric = i.metric AND l.period_start = i.period_start)
ORDER BY i.organization_id, i.metric, i.period_start
ON CONFLICT (organization_id, metric, period_start) DO UPDATE
SET value = c.value + excluded.value, updated_at = GREATEST(c.updated_at, excluded.updated_at)
RETURNING c.organization_id, c.metric, c.period_start, c.period, c.value, c.warned_at,
          c.limited_at, c.updated_at"""
)


LIMITS = sa.text(
    """SELECT l.* FROM usage_limits l
    JOIN unnest(CAST(:orgs AS text[]), CAST(:metrics AS text[])) AS p(organization_id, metric)
      ON l.organization_id = p.organization_id AND l.metric = p.metric"""
)


async def load_limits(
    uow: UnitOfWork, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], rules.Limit]:
    """The limits configured for these (organization, metric) pairs, in one query."""
    ordered = sorted(pairs)
    params = {"orgs": [o for o, _ in ordered], "metrics": [m for _, m in ordered]}
    found = {}
    for row in await uow.conn.execute(LIMITS, params):
        found[(row.organization_id, row.metric)] = rules.Limit(
            row.organization_id,
            row.metric,
            row.period,
            row.limit_value,
            row.warning_pct,
            row.contact,
            tuple(AutoAction.model_validate(a) for a in row.actions),
        )
    return found


async def ingest(uow: UnitOfWork, events: Sequence[UsageRecorded]) -> list[rules.Counter]:
    """Add the events to their counters, then fire the thresholds they crossed."""
    if not events:
        return []
    configured = await load_limits(uow, {(e.data.organization_id, e.data.metric) for e in events})
    totals = rules.tally(events, {k: v.period for k, v in configured.items()})
    keys = list(totals)
    result = await uow.conn.execute(
        UPSERT,
        {
            "orgs": [k.organization_id for k in keys],
            "metrics": [k.metric for k in keys],
            "periods": [totals[k].period for k in keys],
            "starts": [k.period_start for k in keys],
            "ends": [totals[k].period_end for k in keys],
            "quantities": [totals[k].quantity for k in keys],
            "lasts": [totals[k].last_at for k in keys],
        },
    )
    counters = []
    for row in result:
        counter = rules.Counter(
            rules.CounterKey(row.organization_id, row.metric, row.period_start),
            row.period,
            row.value,
            row.warned_at,
            row.limited_at,
        )
        counters.append(counter)
        limit = configured.get((row.organization_id, row.metric))
        # The upsert holds the counter's row lock until commit, so deciding here is safe.
        await thresholds.fire(uow, counter, limit, at=row.updated_at)
    return counters


async def _upsert(uow: UnitOfWork, table: sa.Table, keys: dict[str, Any], **values: Any) -> None:
    stmt = pg_insert(table).values(**keys, **values)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=values)
    await uow.conn.execute(stmt)


async def configure(uow: UnitOfWork, event: CloudEvent) -> None:
    """Apply one configuration event (limit, feature flag, API key) and log it."""
    d: Any = event.data
    org = d.organization_id
    at: datetime = event.time
    if isinstance(event, LimitConfigured):
        await _upsert(
            uow,
            limits,
            {"organization_id": org, "metric": d.metric},
            period=d.period,
            limit_value=d.limit,
            warning_pct=d.warning_pct,
            contact=d.contact,
            actions=[a.model_dump(mode="json") for a in d.actions],
            updated_at=at,
        )
    elif isinstance(event, FeatureFlagSet):
        keys = {"organization_id": org, "flag": d.flag}
        await _upsert(uow, feature_flags, keys, enabled=d.enabled, reason=None, updated_at=at)
    else:
        assert isinstance(event, ApiKeySet)
        keys = {"organization_id": org, "key_id": d.key_id}
        await _upsert(uow, api_keys, keys, active=d.active, reason=None, updated_at=at)
    uow.record(
        entity_type="usage_organization",
        entity_id=org,
        event_type=event.type,
        occurred_at=at,
        metadata=d.model_dump(mode="json"),
    )


async def handle_batch(uow: UnitOfWork, events: Sequence[CloudEvent]) -> None:
    """Apply a batch in order; usage records between configuration events are summed."""
    pending: list[UsageRecorded] = []
    for event in rules.first_per_id(events):
        if isinstance(event, UsageRecorded):
            pending.append(event)
            continue
        await ingest(uow, pending)
        pending = []
        await configure(uow, event)
    await ingest(uow, pending)


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    """One event: a batch of one."""
    await handle_batch(uow, [event])
