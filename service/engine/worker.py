"""The worker: FastStream subscribers for every handler's topic, its retry tiers, and the DLQ index.

Three consumers, each in a consumer group of its own: one takes batches from every
handler's source topic (group ``JOBSTREAM_GROUP_ID``) and hands each handler its
share, handlers side by side; one reads every retry tier, where a message that is
not yet due pauses only its partition until it is; one indexes the dead-letter
topics. A handler marked ``isolated`` (one that calls out, like the notifier) gets
a consumer of its own, so a slow call never holds up the others. Few consumers
matter: each polls the broker even when idle.
Offsets are committed (``ack``) only after the processing path returned; if it
raised (database or broker unreachable) the batch is rewound (``nack``) and retried
after a growing pause, so an outage stalls the worker instead of losing anything.

A fetch must be decided before the consumer has to poll again: each one gets
``POLL_BUDGET`` of ``kafka_max_poll_interval_ms`` (see the processing module for how
a slow batch or handler is cut short); what is not decided by then is rewound on its
partitions, the rest committed, and the consumer polls again in time instead of
being dropped from its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine import dlq, metrics, topics
from service.engine.failures import Incoming
from service.engine.kafka import ensure_topics, faststream_security
from service.engine.processing import Outcome, Processor
from service.engine.workflow import Handler, Workflow

log = logging.getLogger("jobstream.worker")

MAX_BACKOFF_S = 5.0
#: Share of kafka_max_poll_interval_ms in which a fetch is decided; the rest is margin
#: for routing a slow message, committing the offsets and fetching again.
POLL_BUDGET = 0.6
#: Retry-tier fetches come back quickly, so a partition resumed at its due time is read soon.
RETRY_FETCH_WAIT_MS = 50


def incoming(record: ConsumerRecord[Any, Any]) -> Incoming:
    return Incoming(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value or b"",
        headers=dict(record.headers or ()),
        timestamp_ms=record.timestamp,
    )


class AssignmentLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs and counts each partition assignment: a join, or a rebalance of the group."""

    def __init__(self, group: str) -> None:
        self.group = group

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        metrics.REBALANCES.labels(self.group).inc()
        log.info(
            "partitions assigned",
            extra={"action": "assigned", "group": self.group, "partitions": len(assigned)},
        )


async def _no_decode(message: KafkaMessage) -> None:
    """The processing path validates the exact bytes itself; FastStream need not decode."""
    return None


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _with_text_headers(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    """``record``, or a copy whose header values that are not UTF-8 are made so."""
    if all(_utf8(v) for _, v in record.headers):
        return record
    headers = [(k, v.decode(errors="replace").encode()) for k, v in record.headers]
    copy = dataclasses.replace(record, headers=headers)
    if hasattr(record, "consumer"):  # FastStream's own attribute, outside the dataclass
        copy.consumer = record.consumer
    return copy


async def _parse(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's parser, fed header values it can decode.

    It decodes every header value as UTF-8 and, on one that is not, fails the whole
    fetch before any handler runs: one message with a binary header stopped the
    consumer for good (found by the fault suite's fuzzing). The processing path
    reads the record's own bytes (``raw_message``), which stay untouched.
    """
    records = msg if isinstance(msg, tuple) else (msg,)
    text = tuple(_with_text_headers(r) for r in records)
    parsed = await original(text if isinstance(msg, tuple) else text[0])
    parsed.raw_message = msg
    return parsed


def handler_topics(settings: Settings, handler: Handler) -> list[str]:
    """The source topic, every retry tier and the dead-letter topic of one handler."""
    delays = handler.retry_delays_s or settings.retry_delays_s
    return [
        topics.source(settings, handler.topic),
        *(topics.retry(settings, handler.topic, n) for n in range(1, len(delays) + 1)),
        topics.dlq(settings, handler.topic),
    ]


class Worker:
    """Consumes every handler's topic and retry tiers; commits offsets after the database."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        workflows: Iterable[Workflow],
        *,
        index_dead_letters: bool = True,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.handlers = [h for wf in workflows for h in wf.handlers]
        self.broker = KafkaBroker(
            settings.require_kafka(),
            enable_idempotence=settings.kafka_idempotent_producer,
            acks="all",
            logger=logging.getLogger("jobstream.faststream"),
            security=faststream_security(settings),
            middlewares=[
                KafkaPrometheusMiddleware(registry=metrics.REGISTRY, app_name="jobstream")
            ],
        )
        self._lag_task: asyncio.Task[None] | None = None
        self._lag_labels: set[tuple[str, str, str]] = set()
        self.processors: dict[str, Processor] = {}
        self.outcomes: Counter[Outcome] = Counter()
        self._failures = 0
        for handler in self.handlers:
            self.processors[handler.name] = Processor(self.engine, handler, self.settings)
        self._subscribe_sources()
        self._subscribe_tiers()
        if index_dead_letters:
            self._subscribe_index()

    def _options(self, group: str | None) -> dict[str, Any]:
        gid = self.settings.group_id
        group_id = gid if group is None else f"{gid}.{group}"
        return {
            "group_id": group_id,
            "listener": AssignmentLog(group_id),
            "auto_offset_reset": "earliest",
            "session_timeout_ms": self.settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.settings.kafka_heartbeat_interval_ms,
            "max_poll_interval_ms": self.settings.kafka_max_poll_interval_ms,
            "fetch_max_wait_ms": self.settings.kafka_fetch_max_wait_ms,
            "ack_policy": AckPolicy.MANUAL,
            "parser": _parse,
            "decoder": _no_decode,
        }

    def _subscribe_sources(self) -> None:
        """One consumer for every handler's source topic, one more per isolated handler."""
        shared = [h for h in self.handlers if not h.isolated]
        if shared:
            self._subscribe_batches(None, shared)
        for handler in self.handlers:
            if handler.isolated:
                self._subscribe_batches(handler.name, [handler])

    def _subscribe_batches(self, group: str | None, handlers: list[Handler]) -> None:
        by_topic = {
            topics.source(self.settings, h.topic): self.processors[h.name] for h in handlers
        }

        async def consume(body: Any, message: KafkaMessage) -> None:
            records = message.raw_message
            assert isinstance(records, tuple)
            work = self._dispatch(by_topic, records, self._deadline())
            await self._settle(message, work, records)

        self.broker.subscriber(
            *by_topic,
            batch=True,
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=self.settings.batch_max_wait_ms,
            # The client hands out one partition's fetched records before any other's:
            # with aiokafka's 1 MiB a backlogged partition filled ~6 batches of 500 in a
            # row while the others waited (23 s behind a poison flood in the fault
            # suite); at the default 128 KiB a batch spans the partitions with messages.
            max_partition_fetch_bytes=self.settings.kafka_max_partition_fetch_bytes,
            title=f"handlers: {', '.join(h.name for h in handlers)}",
            **self._options(group),
        )(consume)

    def _deadline(self) -> float:
        """When the fetch taken now must be decided (event-loop time)."""
        budget = self.settings.kafka_max_poll_interval_ms / 1000 * POLL_BUDGET
        return asyncio.get_running_loop().time() + budget

    async def _dispatch(
        self,
        by_topic: dict[str, Processor],
        records: tuple[ConsumerRecord[Any, Any], ...],
        deadline: float,
    ) -> list[Outcome]:
        """Each handler's share of a fetch, handlers side by side, each in partition order;
        returns the outcome of each record, in the order of ``records``."""
        per_topic: dict[str, list[int]] = {}
        for position, record in enumerate(records):
            per_topic.setdefault(record.topic, []).append(position)
        results = await asyncio.gather(
            *(
                by_topic[topic].process(
                    [incoming(records[i]) for i in positions],
                    deadline=deadline,
                    one_by_one=not (
                        by_topic[topic].handler.batch and self.settings.consume_batches
                    ),
                )
                for topic, positions in per_topic.items()
            ),
            return_exceptions=True,
        )
        outcomes: list[Outcome] = [Outcome.REWOUND] * len(records)
        for positions, result in zip(per_topic.values(), results, strict=True):
            if isinstance(result, BaseException):
                raise result  # after every handler finished: nothing still runs on a rewind
            for position, outcome in zip(positions, result, strict=True):
                outcomes[position] = outcome
        return outcomes

    def _subscribe_tiers(self) -> None:
        """One consumer for every retry tier of every handler; it holds only what is not due."""
        by_tier = {
            tier: self.processors[h.name]
            for h in self.handlers
            for tier in handler_topics(self.settings, h)[1:-1]
        }
        if not by_tier:
            return

        async def consume_tier(body: Any, message: KafkaMessage) -> None:
            record = message.raw_message
            assert isinstance(record, ConsumerRecord)
            msg = incoming(record)
            wait = msg.due_at - time.time()
            if wait > 0:  # never early: hold this partition only, until its head is due
                self._hold(message, TopicPartition(record.topic, record.partition), wait)
                await message.nack()
                return
            processor = by_tier[record.topic]
            metrics.RETRY_LATENESS.labels(processor.handler.topic).observe(-wait)
            work = processor.process([msg], from_tier=True, deadline=self._deadline())
            await self._settle(message, work, (record,))

        wait = min(self.settings.kafka_fetch_max_wait_ms, RETRY_FETCH_WAIT_MS)
        tier_opts = {**self._options("retry"), "fetch_max_wait_ms": wait}
        self.broker.subscriber(*by_tier, title="retry tiers", **tier_opts)(consume_tier)

    def _subscribe_index(self) -> None:
        dlq_topics = [handler_topics(self.settings, h)[-1] for h in self.handlers]
        if not dlq_topics:
            return

        async def index(body: Any, message: KafkaMessage) -> None:
            record = message.raw_message
            assert isinstance(record, ConsumerRecord)
            await self._settle(message, dlq.index(self.engine, incoming(record)))

        opts = self._options("dlq-index")
        self.broker.subscriber(*dlq_topics, title="dead-letter index", **opts)(index)

    def _hold(self, message: KafkaMessage, tp: TopicPartition, wait: float) -> None:
        consumer: AIOKafkaConsumer = message.consumer
        consumer.pause(tp)
        asyncio.get_running_loop().call_later(wait, self._resume, consumer, tp)

    @staticmethod
    def _resume(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        with contextlib.suppress(Exception):  # revoked meanwhile: its new owner holds it
            consumer.resume(tp)
            # seek to where it stands, which wakes the fetcher now instead of at its next poll
            consumer.seek(tp, consumer._subscription.assignment[tp].position)

    async def _settle(
        self,
        message: KafkaMessage,
        work: Awaitable[Any],
        records: Sequence[ConsumerRecord[Any, Any]] = (),
    ) -> None:
        """Commit the offsets once the work is done; rewind and back off if it failed.

        ``work`` may return the outcome of each of ``records``: the partitions of those
        ``REWOUND`` (not decided in time) are rewound to the first of them before the
        commit, so they are fetched again and nothing after them counts as done."""
        try:
            result = await work
        except Exception:
            self._failures += 1
            pause = min(MAX_BACKOFF_S, 0.1 * 2 ** min(self._failures, 6))
            log.exception(
                "processing failed; will redeliver",
                extra={"action": "redeliver", "pause_s": pause},
            )
            await message.nack()
            await asyncio.sleep(pause)
            return
        self._failures = 0
        if isinstance(result, list):
            self.outcomes.update(result)
            self._rewind(message, records, result)
        await message.ack()

    @staticmethod
    def _rewind(
        message: KafkaMessage, records: Sequence[ConsumerRecord[Any, Any]], outcomes: list[Any]
    ) -> None:
        earliest: dict[TopicPartition, int] = {}
        for record, outcome in zip(records, outcomes, strict=False):
            if outcome is Outcome.REWOUND:
                tp = TopicPartition(record.topic, record.partition)
                earliest[tp] = min(earliest.get(tp, record.offset), record.offset)
        if not earliest:
            return
        consumer: AIOKafkaConsumer = message.consumer
        for tp, offset in earliest.items():
            # The commit below then stops there. A partition revoked meanwhile is not
            # committed by us at all: its new owner reads from the last commit.
            with contextlib.suppress(IllegalStateError, AssertionError):
                consumer.seek(tp, offset)
        log.info(
            "undecided messages rewound",
            extra={"action": "rewind", "partitions": len(earliest)},
        )

    def all_topics(self) -> list[str]:
        return [t for h in self.handlers for t in handler_topics(self.settings, h)]

    async def start(self) -> None:
        await ensure_topics(self.settings, self.all_topics())
        await self.broker.connect()
        # Subscribers join their groups concurrently: one after another costs a
        # group-join round trip each (seconds on some brokers).
        await asyncio.gather(*(sub.start() for sub in self.broker.subscribers))
        self.broker.running = True
        self._lag_task = asyncio.create_task(self._measure_lag_forever())
        log.info("worker started", extra={"action": "worker_start", "handlers": len(self.handlers)})

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        await self.broker.stop()

    async def measure_lag(self) -> dict[tuple[str, str, int], int]:
        """End offset minus committed offset of every partition this worker owns."""
        lags: dict[tuple[str, str, int], int] = {}
        for sub in self.broker.subscribers:
            consumer = getattr(sub, "consumer", None)
            if consumer is None:
                continue
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                committed = await consumer.committed(tp) or 0
                group = getattr(sub, "group_id", None) or ""
                lags[(group, tp.topic, tp.partition)] = max(0, ends[tp] - committed)
        labels = {(g, t, str(p)) for g, t, p in lags}
        for stale in self._lag_labels - labels:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(*stale)
        for (group, topic, partition), lag in lags.items():
            metrics.CONSUMER_LAG.labels(group, topic, str(partition)).set(lag)
        self._lag_labels = labels
        return lags

    async def _measure_lag_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lag_interval_s)
            try:
                await self.measure_lag()
            except Exception:  # a metric must never stop the worker
                log.warning("could not measure consumer lag", exc_info=True)
