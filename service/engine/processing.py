"""The one path every message takes: decode → inbox → transition → log + outbox → commit.

A subscriber hands :meth:`Processor.process` a batch (one message in single mode).
The batch runs in one transaction: invalid messages are dead-lettered, messages
whose key is parked behind a retried message are parked, duplicates are dropped by
the inbox, and the rest go through the handler. If anything in the batch fails,
the transaction is rolled back and the batch is split, in order, down to the single
message that fails; that one is routed by the retry policy (retry tier or dead
letter) in a transaction of its own. The caller commits the Kafka offsets after
this returns; an exception means "nothing decided, redeliver".

Where to split: if the error names the message it is about (an ``event_id``
attribute: set on whatever one ``handle`` call raised, on an ``InvalidTransition``
a batch handler raised for an event, on an injected fault), the batch is split
right there: what came before it, then it alone, then what follows (in halves).
Otherwise in halves. Any split into consecutive runs processed in order gives the
same result, so naming only saves work: halving alone costs about two rolled-back
transactions per level per failing message.

Time is bounded by a deadline the caller derives from the consumer's poll-interval
limit: a consumer that does not poll again within ``kafka_max_poll_interval_ms``
leaves its group, its batch goes to another member, which blocks on the inbox rows
of the still-running transaction and overruns in turn, and every member pays a
rebalance. So the batch as a whole gets half of the time left; if it overruns, it
is rolled back and its messages are decided one per transaction, the first with
all the time left: a message that alone overruns is a slow handler and is routed
as a transient failure (:class:`HandlerTimeout`: retry tiers, then a dead letter
``exhausted`` with the reason). Messages left when the time is up are ``REWOUND``:
not committed, the caller rewinds their partitions and they are fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import CloudEvent
from schemas.registry import decode
from service.config import Settings
from service.engine import metrics, parking
from service.engine.failures import Failure, Incoming, forward, forwarded_before
from service.engine.faults import crash_point, injected
from service.engine.parking import ParkKey
from service.engine.retry import Decision, ErrorClass, RetryDecision, classify, decide
from service.engine.uow import UnitOfWork
from service.engine.workflow import Handler
from service.logs import bind

log = logging.getLogger("jobstream.processing")

__all__ = ["Incoming", "Outcome", "Processor"]


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"
    RETRIED = "retried"
    DEAD = "dead_lettered"
    #: Not decided within the time budget: nothing committed, the offset is rewound.
    REWOUND = "rewound"


#: Share of the time left that a batch gets as a whole before one-by-one takes over.
TOGETHER_SHARE = 0.5


class HandlerTimeout(TimeoutError):
    """A message's handler alone ran past the time a consumer may go without polling."""


@dataclass
class _Item:
    index: int
    msg: Incoming
    event: CloudEvent | None
    #: why the bytes are not an event we accept (pydantic's errors, as a rule)
    invalid: Exception | None

    @property
    def park_key(self) -> ParkKey | None:
        key = self.msg.key_text
        return (self.msg.origin_topic, key) if key else None


def _ids(event: CloudEvent) -> dict[str, str]:
    return {
        "event_id": event.id,
        "correlation_id": event.correlationid or event.id,
        "event_type": event.type,
    }


def _invalid_failure(item: _Item) -> Failure:
    invalid = item.invalid
    assert invalid is not None
    if isinstance(invalid, ValidationError):
        errors = invalid.errors(include_url=False, include_context=False, include_input=False)
        message = json.dumps(errors, default=str)
    else:
        message = f"{type(invalid).__name__}: {invalid}"
    return Failure(ErrorClass.NON_RETRYABLE, invalid, item.msg.attempt + 1, message)


def _name(exc: BaseException, event_id: str) -> None:
    """Say which message ``exc`` is about, unless it says so already."""
    if getattr(exc, "event_id", None) is None:
        with contextlib.suppress(AttributeError):  # an exception type with __slots__
            exc.event_id = event_id  # type: ignore[attr-defined]


def _named(items: list[_Item], exc: BaseException) -> int | None:
    """The position in ``items`` of the message ``exc`` names, if it names one there."""
    event_id = getattr(exc, "event_id", None)
    if event_id is None:
        return None
    for at, item in enumerate(items):
        if item.event is not None and item.event.id == event_id:
            return at
    return None


def _split(items: list[_Item], at: int | None) -> list[list[_Item]]:
    """Consecutive runs of ``items`` to try one after another, in order.

    Named: what came before (it went through until the failure), the message alone,
    then the rest in halves, since the rest may hold more failures: trying it whole
    would cost one attempt over all of it per failure, quadratic when failures are
    dense (found by the fault suite's fuzzing), while halving keeps it n log n.
    """
    if at is None:
        return [items[: len(items) // 2], items[len(items) // 2 :]]
    rest = items[at + 1 :]
    return [items[:at], items[at : at + 1], rest[: len(rest) // 2], rest[len(rest) // 2 :]]


class Processor:
    """Runs one handler for messages from its source topic and its retry tiers."""

    def __init__(self, engine: AsyncEngine, handler: Handler, settings: Settings) -> None:
        self.engine = engine
        self.handler = handler
        self.settings = settings
        self.consumer = handler.name
        self.delays = handler.retry_delays_s or tuple(settings.retry_delays_s)

    async def process(
        self,
        msgs: Sequence[Incoming],
        *,
        from_tier: bool = False,
        deadline: float | None = None,
        one_by_one: bool = False,
    ) -> list[Outcome]:
        """Decide ``msgs``; ``deadline`` (event-loop time) bounds the work, see the module
        docstring; ``one_by_one``: one transaction per message."""
        items = [self._decode(i, m) for i, m in enumerate(msgs)]
        decided: list[Outcome | None] = [None] * len(items)
        started = time.perf_counter()
        if deadline is None and not one_by_one:
            await self._run(items, decided, from_tier)
        else:
            await self._within(items, decided, from_tier, deadline, together=not one_by_one)
        metrics.HANDLER_SECONDS.labels(self.handler.topic).observe(time.perf_counter() - started)
        outcomes = [Outcome.REWOUND if o is None else o for o in decided]
        for outcome in outcomes:
            metrics.MESSAGES.labels(self.handler.topic, outcome.value).inc()
        return outcomes

    async def _within(
        self,
        items: list[_Item],
        outcomes: list[Outcome | None],
        from_tier: bool,
        deadline: float | None,
        *,
        together: bool,
    ) -> None:
        """Decide what the time allows: the batch at once, else one message at a time."""
        loop = asyncio.get_running_loop()
        rest = items
        if together and len(items) > 1:
            assert deadline is not None
            first_try = loop.time() + (deadline - loop.time()) * TOGETHER_SHARE
            try:
                async with asyncio.timeout_at(first_try):
                    await self._run(items, outcomes, from_tier)
                return
            except TimeoutError:
                rest = [it for it in items if outcomes[it.index] is None]
                log.warning(
                    "batch over its time budget: one message per transaction",
                    extra={"action": "slow_batch", "topic": self.handler.topic, "left": len(rest)},
                )
        for n, item in enumerate(rest):
            if n and deadline is not None and loop.time() >= deadline:
                return  # the rest are fetched again
            started = loop.time()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._run([item], outcomes, from_tier)
            except TimeoutError:
                if n:  # it did not have the whole budget: fetched again, first in line
                    return
                limit = loop.time() - started
                slow = HandlerTimeout(
                    f"handler still running after {limit:.1f} s, its share of "
                    "kafka_max_poll_interval_ms (a consumer that does not poll again within "
                    "that interval leaves its group)"
                )
                await self._route(item, slow, outcomes, from_tier)

    def _decode(self, index: int, msg: Incoming) -> _Item:
        try:
            return _Item(index, msg, decode(msg.value, self.handler.events), None)
        except ValidationError as exc:
            return _Item(index, msg, None, exc)
        except Exception as exc:  # a validator that raised something else: still these bytes'
            # fault, and raising here would redeliver the whole batch forever
            log.warning("decoding raised %r", exc, extra={"action": "decode_error"})
            return _Item(index, msg, None, exc)

    async def _run(
        self, items: list[_Item], outcomes: list[Outcome | None], from_tier: bool
    ) -> None:
        try:
            await self._apply(items, outcomes, from_tier)
        except Exception as exc:
            if len(items) == 1:
                await self._route(items[0], exc, outcomes, from_tier)
                return
            # Find the one that fails; its neighbours go through, in order.
            for part in _split(items, _named(items, exc)):
                if part:
                    await self._run(part, outcomes, from_tier)

    async def _apply(
        self, items: list[_Item], outcomes: list[Outcome | None], from_tier: bool
    ) -> None:
        """Everything in one transaction; raises if any message fails.

        ``outcomes`` are written only once the transaction committed: an item without
        one was not decided (its effects, if any, were rolled back)."""
        decided: dict[int, Outcome] = {}
        async with UnitOfWork(self.engine, self.settings.topic_prefix, self.settings) as uow:
            valid: list[_Item] = []
            for item in items:
                if item.invalid is not None:
                    self._dead(uow, item.msg, _invalid_failure(item))
                    decided[item.index] = Outcome.DEAD
                else:
                    valid.append(item)
            keyed = [it.park_key for it in valid if it.park_key]
            parked = await parking.heads(uow.conn, self.consumer, keyed, exclusive=from_tier)
            candidates = await self._triage(uow, valid, parked, decided, from_tier)
            fresh = await uow.claim_messages(self.consumer, [it.event.id for it in candidates])  # type: ignore[union-attr]
            todo: list[_Item] = []
            for item in candidates:
                assert item.event is not None
                if item.event.id in fresh:
                    fresh.discard(item.event.id)  # a second copy inside the batch is a duplicate
                    todo.append(item)
                else:
                    decided[item.index] = Outcome.DUPLICATE
            await self._handle(uow, [it.event for it in todo if it.event is not None])
            for item in todo:
                decided[item.index] = Outcome.APPLIED
                key = item.park_key
                if from_tier and key is not None and key in parked:
                    await self._drain(uow, key)
            crash_point(self.settings, "processing.before_commit")
            await uow.commit()
            for index, outcome in decided.items():
                outcomes[index] = outcome
        crash_point(self.settings, "processing.after_commit")
        if log.isEnabledFor(logging.DEBUG):
            for item in todo:
                assert item.event is not None
                log.debug(
                    "applied",
                    extra={"action": "applied", "topic": item.msg.topic, **_ids(item.event)},
                )

    async def _triage(
        self,
        uow: UnitOfWork,
        valid: list[_Item],
        parked: dict[ParkKey, str],
        decided: dict[int, Outcome],
        from_tier: bool,
    ) -> list[_Item]:
        """Park what waits behind a retried message of its key; return the rest."""
        candidates: list[_Item] = []
        for item in valid:
            assert item.event is not None
            key = item.park_key
            if key is None or key not in parked:
                candidates.append(item)
            elif parked[key] == item.event.id:
                # The head itself: from a tier it is due now; from the source topic it
                # is a redelivery whose tier copy is already on its way.
                if from_tier:
                    candidates.append(item)
                else:
                    decided[item.index] = Outcome.DUPLICATE
            else:
                await parking.park(uow.conn, self.consumer, key, item.msg, item.event.id)
                decided[item.index] = Outcome.PARKED
        return candidates

    async def _handle(self, uow: UnitOfWork, events: list[CloudEvent]) -> None:
        await injected(self.settings, events)
        if self.handler.handle_batch is not None and len(events) > 1:
            await self.handler.handle_batch(uow, events)
            return
        for event in events:
            uow.use(event)
            with bind(**_ids(event)):
                try:
                    await self.handler.handle(uow, event)
                except Exception as exc:
                    _name(exc, event.id)
                    raise

    async def _route(
        self, item: _Item, exc: BaseException, outcomes: list[Outcome | None], from_tier: bool
    ) -> None:
        """One message failed: retry tier or dead letter, with parking, in one transaction."""
        with bind(**(_ids(item.event) if item.event else {"offset": item.msg.offset})):
            async with UnitOfWork(self.engine, self.settings.topic_prefix, self.settings) as uow:
                outcome = await self._failed(uow, item, exc)
                await uow.commit()
                outcomes[item.index] = outcome

    async def _failed(self, uow: UnitOfWork, item: _Item, exc: BaseException) -> Outcome:
        msg = item.msg
        if item.invalid is not None:
            self._dead(uow, msg, _invalid_failure(item))
            return Outcome.DEAD
        assert item.event is not None
        error_class = classify(exc, self.handler.retryable, self.handler.non_retryable)
        failure = Failure(error_class, exc, msg.attempt + 1, str(exc))
        decision = decide(failure.attempt, error_class, self.delays, self.settings.retry_jitter)
        if await self._decided_before(uow, msg, failure.attempt, decision):
            # A redelivery of a failure decided before (its tier copy or dead letter
            # exists): setting its key's head again would park the key for good.
            return Outcome.DUPLICATE
        key = item.park_key
        head = None
        if key is not None:
            head = (await parking.heads(uow.conn, self.consumer, [key], exclusive=True)).get(key)
        if head is not None and head != item.event.id:
            # Another message of this key is already waiting in a tier: queue behind it.
            await parking.park(uow.conn, self.consumer, key, msg, item.event.id)  # type: ignore[arg-type]
            return Outcome.PARKED
        if isinstance(decision, RetryDecision):
            if key is not None:
                await parking.set_head(uow.conn, self.consumer, key, item.event.id)
            topic = forward(
                uow,
                self.settings,
                self.consumer,
                msg,
                failure,
                retry_tier=decision.tier,
                delay_s=decision.delay_s,
            )
            self._report_retry(uow, decision, topic, failure.attempt, exc)
            return Outcome.RETRIED
        failure = Failure(decision.error_class, exc, failure.attempt, failure.message)
        self._dead(uow, msg, failure)
        if key is not None and head is not None:  # the head is gone: its key follows on
            await self._drain(uow, key)
        return Outcome.DEAD

    async def _decided_before(
        self, uow: UnitOfWork, msg: Incoming, attempt: int, decision: Decision
    ) -> bool:
        tier = decision.tier if isinstance(decision, RetryDecision) else None
        return await forwarded_before(uow, self.settings, self.consumer, msg, attempt, tier)

    def _report_retry(
        self,
        uow: UnitOfWork,
        decision: RetryDecision,
        topic: str,
        attempt: int,
        exc: BaseException,
    ) -> None:
        def report() -> None:
            metrics.RETRIES.labels(self.handler.topic, str(decision.tier)).inc()
            log.warning(
                "retrying message",
                extra={"action": "retry", "topic": topic, "attempt": attempt, "error": repr(exc)},
            )

        uow.after_commit(report)

    def _dead(self, uow: UnitOfWork, msg: Incoming, failure: Failure) -> None:
        topic = forward(uow, self.settings, self.consumer, msg, failure)

        def report() -> None:
            metrics.DEAD_LETTERS.labels(self.handler.topic, failure.error_class.value).inc()
            log.error(
                "dead-lettered message",
                extra={
                    "action": "dead_letter",
                    "topic": topic,
                    "error_class": failure.error_class.value,
                    "error": failure.message[:500],
                },
            )

        uow.after_commit(report)

    async def _drain(self, uow: UnitOfWork, key: ParkKey) -> None:
        """Apply the messages parked behind ``key`` in order, until one must wait again."""
        await parking.heads(uow.conn, self.consumer, [key], exclusive=True)
        for parked in await parking.waiting(uow.conn, self.consumer, key):
            await parking.unpark(uow.conn, parked.id)
            item = self._decode(0, parked.message)
            if item.invalid is not None:
                self._dead(uow, item.msg, _invalid_failure(item))
                continue
            event = item.event
            assert event is not None
            try:
                async with uow.savepoint():
                    if await uow.claim_message(self.consumer, event.id):
                        uow.use(event)
                        await self.handler.handle(uow, event)
            except Exception as exc:
                error_class = classify(exc, self.handler.retryable, self.handler.non_retryable)
                failure = Failure(error_class, exc, item.msg.attempt + 1, str(exc))
                decision = decide(
                    failure.attempt, error_class, self.delays, self.settings.retry_jitter
                )
                if await self._decided_before(uow, item.msg, failure.attempt, decision):
                    continue  # parked again by a redelivery; its failure was decided before
                if isinstance(decision, RetryDecision):  # the new head; the rest keep waiting
                    await parking.set_head(uow.conn, self.consumer, key, event.id)
                    topic = forward(
                        uow,
                        self.settings,
                        self.consumer,
                        item.msg,
                        failure,
                        retry_tier=decision.tier,
                        delay_s=decision.delay_s,
                    )
                    self._report_retry(uow, decision, topic, failure.attempt, exc)
                    return
                self._dead(
                    uow,
                    item.msg,
                    Failure(decision.error_class, exc, failure.attempt, failure.message),
                )
        await parking.release(uow.conn, self.consumer, key)
