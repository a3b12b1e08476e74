"""Challenges handler: load the aggregate, apply the pure rule, save, log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.challenges import (
    ChallengeCreated,
    ChallengeMemberJoined,
    ChallengeProgressRecorded,
    NotificationCreated,
    UserUpserted,
)
from schemas.envelope import CloudEvent
from service.engine.uow import UnitOfWork
from service.errors import InvalidTransition
from service.workflows.challenges import rules
from service.workflows.challenges.tables import (
    challenge_members,
    challenge_users,
    challenges,
    user_notifications,
)


def _log(uow: UnitOfWork, entity: str, entity_id: str, event: CloudEvent, **meta: Any) -> None:
    uow.record(
        entity_type=entity,
        entity_id=entity_id,
        event_type=event.type,
        occurred_at=event.time,
        metadata={**meta, **event.data.model_dump(mode="json")},
    )


async def load_challenge(uow: UnitOfWork, challenge_id: str) -> rules.Challenge | None:
    query = sa.select(challenges).where(challenges.c.id == challenge_id).with_for_update()
    row = (await uow.conn.execute(query)).first()
    if row is None:
        return None
    return rules.Challenge(**{**row._asdict(), "status": rules.ChallengeStatus(row.status)})


async def load_member(uow: UnitOfWork, challenge_id: str, user_id: str) -> rules.Member | None:
    c = challenge_members.c
    query = sa.select(challenge_members).where(c.challenge_id == challenge_id, c.user_id == user_id)
    row = (await uow.conn.execute(query.with_for_update())).first()
    return rules.Member(**row._asdict()) if row else None


async def on_user(uow: UnitOfWork, event: UserUpserted) -> None:
    data = event.data
    values = {"name": data.name, "timezone": data.timezone, "updated_at": event.time}
    stmt = pg_insert(challenge_users).values(id=data.user_id, **values)
    # An older profile than the one stored (by event time) does not overwrite it.
    upsert = stmt.on_conflict_do_update(
        index_elements=[challenge_users.c.id],
        set_={k: stmt.excluded[k] for k in values},
        where=challenge_users.c.updated_at <= stmt.excluded.updated_at,
    ).returning(challenge_users.c.id)
    applied = (await uow.conn.execute(upsert)).first() is not None
    _log(uow, "user", data.user_id, event, applied=applied)


async def on_notification(uow: UnitOfWork, event: NotificationCreated) -> None:
    data = event.data
    stmt = (
        pg_insert(user_notifications)
        .values(
            id=data.notification_id,
            user_id=data.user_id,
            title=data.title,
            body=data.body,
            created_at=event.time,
        )
        .on_conflict_do_nothing()
        .returning(user_notifications.c.id)
    )
    if (await uow.conn.execute(stmt)).first() is None:
        raise InvalidTransition("notification", data.notification_id, "created", event.type)
    _log(uow, "notification", data.notification_id, event)


async def on_challenge(uow: UnitOfWork, event: ChallengeCreated) -> None:
    before = await load_challenge(uow, event.data.challenge_id)
    challenge = rules.create(before, event)
    values = {**vars(challenge), "status": challenge.status.value}
    await uow.conn.execute(challenges.insert().values(**values))
    _log(uow, "challenge", challenge.id, event, to=challenge.status.value)


async def on_member(
    uow: UnitOfWork, event: ChallengeMemberJoined | ChallengeProgressRecorded
) -> None:
    data = event.data
    challenge = await load_challenge(uow, data.challenge_id)
    before = await load_member(uow, data.challenge_id, data.user_id)
    if isinstance(event, ChallengeMemberJoined):
        member = rules.join(challenge, before, event)
        await uow.conn.execute(challenge_members.insert().values(**vars(member)))
    else:
        member = rules.record_progress(challenge, before, event)
        c = challenge_members.c
        await uow.conn.execute(
            challenge_members.update()
            .where(c.challenge_id == member.challenge_id, c.user_id == member.user_id)
            .values(completion_rate=member.completion_rate, progress_at=member.progress_at)
        )
    _log(uow, "challenge", data.challenge_id, event, stale=before is not None and member == before)


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    if isinstance(event, UserUpserted):
        await on_user(uow, event)
    elif isinstance(event, NotificationCreated):
        await on_notification(uow, event)
    elif isinstance(event, ChallengeCreated):
        await on_challenge(uow, event)
    elif isinstance(event, ChallengeMemberJoined | ChallengeProgressRecorded):
        await on_member(uow, event)
    else:  # the topic's union admits nothing else
        raise TypeError(f"challenges cannot handle {event.type!r}")
