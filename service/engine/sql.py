"""SQL building blocks for set-based jobs: log and announce every changed row.

A job's statement ends in a CTE whose rows are the changes it made (one row per
entity, with an ``event_id uuid`` column and a ``meta jsonb`` column). These
helpers append the CTEs that write one ``event_log`` row and one ``outbox`` row
per change in the same statement, so a job over 100,000 rows is one round trip.

Bound parameters every statement must supply: ``:now`` (the slot time), ``:actor``,
``:source`` (CloudEvents source), ``:correlation_id`` (the run's correlation id),
plus the topic parameter named in the call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from schemas.notifications import NOTIFICATIONS_TOPIC

if TYPE_CHECKING:
    from service.engine.workflow import JobContext

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE = re.compile(r"^[a-z][a-z0-9_.-]*$")


def _ident(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def cloud_event(event_type: str, *, event_id: str, subject: str, data: str) -> str:
    """A jsonb CloudEvents 1.0 envelope built from SQL expressions of the source CTE."""
    if not _TYPE.fullmatch(event_type):
        raise ValueError(f"not an event type: {event_type!r}")
    return (
        "jsonb_build_object('specversion', '1.0', "
        f"'id', ({event_id})::text, 'source', CAST(:source AS text), "
        f"'type', '{event_type}', 'time', CAST(:now AS timestamptz), "
        f"'subject', ({subject})::text, 'datacontenttype', 'application/json', "
        "'correlationid', CAST(:correlation_id AS text), "
        f"'data', {data})"
    )


def log_rows(
    source: str, *, entity_type: str, event_type: str, entity_id: str, name: str = "logged"
) -> str:
    """``<name> AS (INSERT INTO event_log ...)``: one row per row of ``source``."""
    _ident(source), _ident(name), _ident(entity_type)
    if not _TYPE.fullmatch(event_type):
        raise ValueError(f"not an event type: {event_type!r}")
    return f"""{name} AS (
    INSERT INTO event_log (event_id, occurred_at, actor, entity_type, entity_id, event_type,
                           metadata, correlation_id)
    SELECT event_id, CAST(:now AS timestamptz), CAST(:actor AS text), '{entity_type}',
           ({entity_id})::text, '{event_type}', meta, CAST(:correlation_id AS text)
    FROM {source}
)"""


def outbox_rows(
    source: str,
    *,
    event_type: str,
    key: str,
    subject: str | None = None,
    data: str = "meta",
    topic_param: str = "topic",
    event_id: str = "event_id",
    name: str = "queued",
) -> str:
    """``<name> AS (INSERT INTO outbox ...)``: one CloudEvent per row of ``source``."""
    _ident(source), _ident(name), _ident(topic_param)
    envelope = cloud_event(event_type, event_id=event_id, subject=subject or key, data=data)
    return f"""{name} AS (
    INSERT INTO outbox (event_id, topic, key, payload)
    SELECT {event_id}, CAST(:{topic_param} AS text), ({key})::text, {envelope}
    FROM {source}
)"""


def log_and_outbox(
    source: str, *, entity_type: str, event_type: str, entity_id: str, topic_param: str = "topic"
) -> str:
    """Both CTEs for the common case: the event-log row and the outbound event share an id."""
    return (
        log_rows(source, entity_type=entity_type, event_type=event_type, entity_id=entity_id)
        + ",\n"
        + outbox_rows(source, event_type=event_type, key=entity_id, topic_param=topic_param)
    )


def notification_rows(
    source: str,
    *,
    channel: str,
    recipient: str,
    template: str,
    data: str,
    topic_param: str = "notifications_topic",
    name: str = "notified",
) -> str:
    """``<name> AS (INSERT INTO outbox ...)``: a ``notification.requested`` per source row.

    ``channel``/``recipient``/``template``/``data`` are SQL expressions over ``source``.
    """
    _ident(source), _ident(name), _ident(topic_param)
    payload = (
        f"jsonb_build_object('channel', ({channel})::text, 'recipient', ({recipient})::text, "
        f"'template', ({template})::text, 'data', {data})"
    )
    envelope = cloud_event(
        "notification.requested", event_id="n.nid", subject=f"n.{_ident('recipient')}", data="n.p"
    )
    return f"""{name} AS (
    INSERT INTO outbox (event_id, topic, key, payload)
    SELECT n.nid, CAST(:{topic_param} AS text), n.recipient, {envelope}
    FROM (SELECT gen_random_uuid() AS nid, ({recipient})::text AS recipient, {payload} AS p
          FROM {source}) n
)"""


def bind(ctx: JobContext, topic: str, **extra: Any) -> dict[str, Any]:
    """The parameters every statement built from these helpers binds, plus ``extra``.

    ``topic`` is the workflow's outbound topic (unprefixed); notifications go to
    ``notifications.out``. ``now`` is the slot time, never the wall clock.
    """
    settings = ctx.settings
    return {
        "now": ctx.now,
        "actor": ctx.actor or "scheduler",
        "source": settings.source,
        "correlation_id": f"run:{ctx.run_id}" if ctx.run_id else None,
        "topic": settings.topic(topic),
        "notifications_topic": settings.topic(NOTIFICATIONS_TOPIC),
        **extra,
    }


def plain(row: sa.Row[Any]) -> dict[str, Any]:
    """A result row as JSON-ready values: times in ISO 8601, decimals and the like as strings."""
    out: dict[str, Any] = {}
    for key, value in row._mapping.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value is not None and not isinstance(value, bool | int | str):
            value = str(value)
        out[key] = value
    return out
