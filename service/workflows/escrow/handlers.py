"""Escrow handler: load the aggregate, apply the pure rule, save, log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.envelope import CloudEvent
from schemas.escrow import (
    BoostGranted,
    CycleCreated,
    CycleFulfilled,
    DonationConfirmed,
    MatchAccepted,
    MatchCreated,
)
from service.engine.uow import UnitOfWork
from service.workflows.escrow import leaderboard, rules
from service.workflows.escrow.tables import (
    escrow_accounts,
    escrow_boosts,
    escrow_cycles,
    escrow_matches,
    escrows,
)


async def ensure_accounts(uow: UnitOfWork, credits: dict[str, Decimal]) -> None:
    """Open missing accounts and add ``credits`` to receivables, in user-id order.

    One statement, rows locked in a fixed order, so two donations between the same
    two users in opposite directions cannot deadlock.
    """
    values = [{"user_id": u, "receivable": credits[u]} for u in sorted(credits)]
    stmt = pg_insert(escrow_accounts).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[escrow_accounts.c.user_id],
        set_={"receivable": escrow_accounts.c.receivable + stmt.excluded.receivable},
    )
    await uow.conn.execute(stmt)


_T = TypeVar("_T")


async def _load(
    uow: UnitOfWork,
    table: sa.Table,
    entity_id: str,
    cls: Callable[..., _T],
    status: type[StrEnum] | None = None,
) -> _T | None:
    """The aggregate's row (locked) as its rules dataclass, or None if absent."""
    query = sa.select(table).where(table.c.id == entity_id).with_for_update()
    row = (await uow.conn.execute(query)).first()
    if row is None:
        return None
    values = row._asdict()
    if status is not None:
        values["status"] = status(values["status"])
    return cls(**values)


async def _save(uow: UnitOfWork, table: sa.Table, aggregate: Any, *, new: bool) -> None:
    values = {k: v.value if isinstance(v, StrEnum) else v for k, v in asdict(aggregate).items()}
    if new:
        await uow.conn.execute(table.insert().values(**values))
    else:
        await uow.conn.execute(table.update().where(table.c.id == values["id"]).values(**values))


def _log(
    uow: UnitOfWork, entity: str, entity_id: str, event: CloudEvent, frm: str | None, to: str
) -> None:
    uow.record(
        entity_type=entity,
        entity_id=entity_id,
        event_type=event.type,
        occurred_at=event.time,
        metadata={"from": frm, "to": to, **event.data.model_dump(mode="json")},
    )


async def on_donation(uow: UnitOfWork, event: DonationConfirmed) -> None:
    data = event.data
    before = await _load(uow, escrows, data.escrow_id, rules.Escrow, rules.EscrowStatus)
    escrow = rules.confirm(before, event)
    await _save(uow, escrows, escrow, new=True)
    # Money enters here: the donation is owed to the recipient until the hold passes.
    await ensure_accounts(uow, {data.recipient_id: data.amount, data.donor_id: Decimal(0)})
    _log(uow, "escrow", escrow.id, event, None, escrow.status)


async def on_match(uow: UnitOfWork, event: MatchCreated | MatchAccepted) -> None:
    before = await _load(uow, escrow_matches, event.data.match_id, rules.Match, rules.MatchStatus)
    after = rules.apply_match(before, event)
    await _save(uow, escrow_matches, after, new=before is None)
    if before is None:
        await ensure_accounts(uow, {after.donor_id: Decimal(0), after.recipient_id: Decimal(0)})
    _log(uow, "match", after.id, event, before.status if before else None, after.status)


async def on_cycle(uow: UnitOfWork, event: CycleCreated | CycleFulfilled) -> None:
    before = await _load(uow, escrow_cycles, event.data.cycle_id, rules.Cycle, rules.CycleStatus)
    after = rules.apply_cycle(before, event)
    await _save(uow, escrow_cycles, after, new=before is None)
    if before is None:
        await ensure_accounts(uow, {after.user_id: Decimal(0)})
    _log(uow, "cycle", after.id, event, before.status if before else None, after.status)


async def on_boost(uow: UnitOfWork, event: BoostGranted) -> None:
    before = await _load(uow, escrow_boosts, event.data.boost_id, leaderboard.Boost)
    boost = leaderboard.grant(before, event)
    await _save(uow, escrow_boosts, boost, new=True)
    await ensure_accounts(uow, {boost.user_id: Decimal(0)})
    _log(uow, "boost", boost.id, event, None, "active")


_ROUTES: dict[type[CloudEvent], Callable[[UnitOfWork, Any], Awaitable[None]]] = {
    DonationConfirmed: on_donation,
    MatchCreated: on_match,
    MatchAccepted: on_match,
    CycleCreated: on_cycle,
    CycleFulfilled: on_cycle,
    BoostGranted: on_boost,
}


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    await _ROUTES[type(event)](uow, event)
