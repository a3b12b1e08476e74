"""Prometheus metrics that FastStream's middleware does not already provide.

One registry for the process; ``/metrics`` on the API serves it. Label values are
topic names, error classes and job names: bounded sets, never ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SLOW = (0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)

# -- messages (engine processing path)
MESSAGES = Counter(
    "jobstream_messages_total",
    "Messages handled by outcome (applied, duplicate, retried, dead_lettered, parked, rewound).",
    ["topic", "outcome"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "jobstream_retries_total",
    "Messages sent to a retry tier.",
    ["topic", "tier"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "jobstream_dead_letters_total",
    "Messages sent to the dead-letter topic, by error class.",
    ["topic", "error_class"],
    registry=REGISTRY,
)
REPLAYS = Counter(
    "jobstream_dlq_replays_total",
    "Dead letters replayed into their handler.",
    ["topic"],
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "jobstream_handler_seconds",
    "Time from taking a message (or batch) to committing its transaction.",
    ["topic"],
    buckets=_FAST,
    registry=REGISTRY,
)
RETRY_LATENESS = Histogram(
    "jobstream_retry_lateness_seconds",
    "How long after its due time a retried message was handled (never negative).",
    ["topic"],
    buckets=_FAST,
    registry=REGISTRY,
)
REBALANCES = Counter(
    "jobstream_consumer_rebalances_total",
    "Partition assignments this process received (one per group join or rebalance).",
    ["group"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "jobstream_consumer_lag",
    "End offset minus committed offset, per partition.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)

# -- outbox relay
OUTBOX_BACKLOG = Gauge(
    "jobstream_outbox_backlog",
    "Outbox rows not yet published.",
    registry=REGISTRY,
)
RELAY_PUBLISHED = Counter(
    "jobstream_relay_published_total",
    "Outbox rows published by the relay.",
    registry=REGISTRY,
)
RELAY_LATENCY = Histogram(
    "jobstream_relay_latency_seconds",
    "Outbox row commit (created_at) to published.",
    buckets=_FAST,
    registry=REGISTRY,
)

# -- jobs and the clock
JOB_RUNS = Counter(
    "jobstream_job_runs_total",
    "Job runs by outcome (succeeded, failed, retrying, skipped, missed, stalled).",
    ["job", "status"],
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "jobstream_job_run_seconds",
    "Job run duration.",
    ["job"],
    buckets=_SLOW,
    registry=REGISTRY,
)
JOB_OVERDUE = Counter(
    "jobstream_job_overdue_total",
    "Slots that had not succeeded by their job's deadline.",
    ["job"],
    registry=REGISTRY,
)
TICK_LATENESS = Histogram(
    "jobstream_tick_lateness_seconds",
    "Tick emission time minus slot time (jitter excluded).",
    ["job"],
    buckets=_FAST,
    registry=REGISTRY,
)
JOB_START_LATENESS = Histogram(
    "jobstream_job_start_lateness_seconds",
    "Job start time minus slot time, for scheduled runs.",
    ["job"],
    buckets=_FAST,
    registry=REGISTRY,
)
