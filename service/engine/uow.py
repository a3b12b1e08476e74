"""Unit of work: one transaction that owns the inbox, the event log and the outbox.

``async with UnitOfWork(engine) as uow:`` opens a connection and a transaction and
rolls back on exit unless ``await uow.commit()`` ran. Event-log and outbox rows are
buffered and written with one multi-row statement each at commit, so a batch of
messages costs a handful of round trips.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from schemas.envelope import CloudEvent
from service.db.tables import event_log, outbox, processed_messages

if TYPE_CHECKING:
    from service.config import Settings

#: The relay LISTENs here when ``Settings.relay_wakeup == "notify"``.
OUTBOX_CHANNEL = "jobstream_outbox"
NOTIFY_RELAY = sa.text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")


@dataclass(frozen=True)
class Cause:
    """The message being handled, for correlation and causation of what it produces."""

    event_id: str
    correlation_id: str
    actor: str

    @classmethod
    def of(cls, event: CloudEvent) -> Cause:
        return cls(event.id, event.correlationid or event.id, event.source)


class UnitOfWork:
    def __init__(
        self, engine: AsyncEngine, topic_prefix: str = "", settings: Settings | None = None
    ) -> None:
        self._engine = engine
        self._prefix = topic_prefix
        #: The deployment's settings, for handlers that need configuration (e.g. a sink).
        self.settings = settings
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self._log: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._after: list[Callable[[], None]] = []
        self.cause: Cause | None = None

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        self._tx = await self._conn.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = self._tx = None

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None, "use `async with uow:` first"
        return self._conn

    async def claim_messages(self, consumer: str, message_ids: list[str]) -> set[str]:
        """Inbox: record the ids; return those not seen before (the rest are duplicates)."""
        if not message_ids:
            return set()
        stmt = (
            pg_insert(processed_messages)
            .from_select(
                ["consumer", "message_id"],
                sa.select(
                    sa.literal(consumer),
                    sa.func.unnest(sa.cast(sa.bindparam("ids"), sa.ARRAY(sa.Text))),
                ),
            )
            .on_conflict_do_nothing()
            .returning(processed_messages.c.message_id)
        )
        result = await self.conn.execute(stmt, {"ids": message_ids})
        return {row[0] for row in result}

    async def claim_message(self, consumer: str, message_id: str) -> bool:
        return bool(await self.claim_messages(consumer, [message_id]))

    def record(
        self,
        *,
        entity_type: str,
        entity_id: str,
        event_type: str,
        occurred_at: datetime,
        metadata: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> None:
        """Append an event_log row (written at commit)."""
        cause = self.cause
        self._log.append(
            {
                "occurred_at": occurred_at,
                "actor": actor or (cause.actor if cause else "system"),
                "entity_type": entity_type,
                "entity_id": entity_id,
                "event_type": event_type,
                "metadata": metadata or {},
                "correlation_id": cause.correlation_id if cause else None,
                "causation_id": cause.event_id if cause else None,
            }
        )

    def publish(self, topic: str, event: CloudEvent, headers: dict[str, str] | None = None) -> None:
        """Queue an outbound event in the outbox (written at commit, sent by the relay)."""
        cause = self.cause
        if cause is not None and event.correlationid is None:
            event = event.model_copy(
                update={"correlationid": cause.correlation_id, "causationid": cause.event_id}
            )
        self._outbox.append(
            {
                "event_id": event.id,
                "topic": f"{self._prefix}{topic}",
                "key": event.key,
                "payload": event.model_dump(mode="json", exclude_none=True),
                "value": None,
                "headers": headers or {},
            }
        )

    def use(self, event: CloudEvent) -> None:
        """Make ``event`` the cause of what is recorded next (batch handlers call it per event)."""
        self.cause = Cause.of(event)

    def forward(
        self, topic: str, value: bytes, key: str | None, headers: dict[str, str], forward_id: str
    ) -> None:
        """Queue exact bytes for ``topic`` (a full topic name): retry tiers and dead letters."""
        self._outbox.append(
            {
                "event_id": forward_id,
                "topic": topic,
                "key": key,
                "payload": None,
                "value": value,
                "headers": {**headers, "x-forward-id": forward_id},
            }
        )

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction; on an exception it also drops what was buffered inside it."""
        marks = len(self._log), len(self._outbox)
        nested = await self.conn.begin_nested()
        try:
            yield
        except BaseException:
            await nested.rollback()
            del self._log[marks[0] :], self._outbox[marks[1] :]
            raise
        await nested.commit()

    async def flush(self) -> None:
        if self._log:
            await self.conn.execute(event_log.insert(), self._log)
            self._log = []
        if self._outbox:
            # Forwards carry a deterministic id: a redelivered message that fails again
            # must not forward twice.
            stmt = pg_insert(outbox).on_conflict_do_nothing(index_elements=[outbox.c.event_id])
            await self.conn.execute(stmt, self._outbox)
            self._outbox = []
            if self.settings is not None and self.settings.relay_wakeup == "notify":
                await self.conn.execute(NOTIFY_RELAY)  # delivered to the relay at commit

    def after_commit(self, report: Callable[[], None]) -> None:
        """Call ``report`` (a log line, a metric) once the transaction has committed.

        A batch that fails is rolled back and tried again in parts: what it decided
        on the way must not be logged or counted until it holds.
        """
        self._after.append(report)

    async def commit(self) -> None:
        await self.flush()
        assert self._tx is not None
        await self._tx.commit()
        reports, self._after = self._after, []
        for report in reports:
            report()
