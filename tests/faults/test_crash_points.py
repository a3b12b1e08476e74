"""Named crash points: each role SIGKILLed at the exact step where a crash hurts most.

``JOBSTREAM_CRASH_AT=point:N`` makes a real process kill itself at the Nth pass
through the point (service/engine/faults.py). Each scenario checks that the process
did die there (exit -SIGKILL, nobody else killed it) before its work was done, then
restarts it without the fault and checks what the point's comment promises:

- ``processing.before_commit``: the batch's transaction never commits, the messages
  are redelivered and applied once;
- ``processing.after_commit``: the batch committed but its offsets did not; the
  redelivery is dropped by the inbox;
- ``relay.after_publish``: the broker has the batch but the rows are not marked; the
  next relay publishes exactly that batch again (at-least-once), nothing is lost;
- ``jobs.before_commit``: a release of many orphaned claims ran its statements and
  died before its commit; nothing of it is left, and re-running it releases every
  claim once, with one event_log row and one outbox row each.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.workflows.claims.jobs import OUT_TOPIC, TIMEOUT_RELEASED
from tests.faults.checker import check, deliveries
from tests.faults.conftest import size
from tests.faults.harness import (
    RELEASE_JOB,
    Cluster,
    Process,
    jobstream,
    orphan_claims,
    processed,
    publish_stream,
    release_rounds,
    settle,
    until,
)
from tests.faults.stream import FAIL_SOURCE, claim_stream
from tests.helpers import scalar, topic_size

pytestmark = pytest.mark.integration


async def died(proc: Process, point: str, cluster: Cluster) -> None:
    """Wait for ``proc`` to kill itself at its crash point (and not exit any other way)."""

    async def gone() -> bool:
        return not proc.alive

    await until(gone, timeout=180, what=f"{proc.name} to die at {point}", cluster=cluster)
    assert proc.popen.returncode == -signal.SIGKILL, cluster.report()
    proc.kills += 1


async def query(engine: AsyncEngine, sql: str, **params: object) -> list[sa.Row[Any]]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql), params))


async def published(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"))


@pytest.mark.parametrize("point", ["processing.before_commit", "processing.after_commit"])
async def test_worker_dies_at_a_commit_point_and_the_stream_settles_clean(
    point: str,
    cluster: Cluster,
    engine: AsyncEngine,
    settings: Settings,
    figures: Callable[..., None],
) -> None:
    stream = claim_stream(size(1_000, 10_000), seed=21, malformed=0.01, failing=0.005)
    crashes = size(2, 5)
    rng = random.Random(point)
    passes = [rng.randint(3, size(8, 40)) for _ in range(crashes)]
    valid = len(stream.valid)
    cluster.env["fault_fail_source"] = FAIL_SOURCE
    cluster.start("relay")
    worker = cluster.start("worker", crash_at=f"{point}:{passes[0]}")
    # Spread the stream over the crashes and restarts, so every crash falls inside it.
    producer = asyncio.create_task(
        publish_stream(settings, stream.entries, per_second=len(stream) / (6.0 * crashes))
    )
    died_at: list[int] = []
    recoveries: list[float] = []
    for i in range(crashes):
        await died(worker, point, cluster)
        at = await processed(engine)
        died_at.append(at)
        again = {"crash_at": f"{point}:{passes[i + 1]}"} if i + 1 < crashes else {}
        worker = cluster.restart(worker, **again)
        # Redelivered batches of duplicates count as passes too: a worker with a crash
        # point may die again before it applies anything new. That is no recovery yet.
        started = time.monotonic()

        async def recovered(at: int = at, proc: Process = worker) -> bool:
            return await processed(engine) > at or not proc.alive

        await until(recovered, timeout=180, what="progress after a restart", cluster=cluster)
        if await processed(engine) > at:
            recoveries.append(time.monotonic() - started)
    await producer
    await settle(engine, settings, stream, timeout=300, cluster=cluster)
    verdict = await check(engine, settings, stream)
    figures(
        **verdict.figures,
        point=point,
        kills=len(died_at),
        died_after=died_at,
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated),
        unexpected=len(verdict.unexpected),
        recovery_max_s=round(max(recoveries), 1),
    )
    assert all(at < valid for at in died_at), f"a crash came after the stream: {died_at}"
    assert verdict.ok, str(verdict)


async def test_relay_dies_after_publishing_and_republishes_only_that_batch(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    batch = 100
    rows = await release_rounds(engine, settings, size(500, 4_000), size(3, 5))
    crashes = size(2, 5)
    rng = random.Random(4)
    passes = [rng.randint(2, size(4, 20)) for _ in range(crashes)]
    topic = settings.topic(OUT_TOPIC)
    relay = cluster.start(
        "relay", relay_batch_size=batch, crash_at=f"relay.after_publish:{passes[0]}"
    )
    repeats = 0
    for i in range(crashes):
        await died(relay, "relay.after_publish", cluster)
        at = await published(engine)
        assert at < rows, f"the relay died after publishing everything ({at} rows)"
        in_topic = await topic_size(settings, topic)
        # acks=all: the whole batch is in the topic, and none of it is marked.
        assert in_topic - at - repeats == min(batch, rows - at), (in_topic, at, repeats)
        repeats = in_topic - at
        again = {"crash_at": f"relay.after_publish:{passes[i + 1]}"} if i + 1 < crashes else {}
        relay = cluster.restart(relay, relay_batch_size=batch, **again)

    async def drained() -> bool:
        return await published(engine) >= rows

    await until(drained, timeout=300, what="every outbox row published", cluster=cluster)
    seen = await deliveries(engine, settings, topic, timeout=300)
    figures(**seen.figures, kills=crashes, point="relay.after_publish")
    assert seen.rows == rows
    assert seen.ok, str(seen)
    assert seen.duplicates == repeats, "only the batches published at a crash come twice"


async def test_release_killed_before_its_commit_leaves_nothing_and_reruns_once(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    claims = size(2_000, 50_000)
    ids = set(await orphan_claims(engine, claims, now=datetime.now(UTC)))
    cluster.start("relay")

    code, out = await jobstream(
        settings, "jobs", "run", RELEASE_JOB, "--actor", "faults", crash_at="jobs.before_commit:1"
    )
    assert code == -signal.SIGKILL, out
    # All or nothing: the run began (its row says running) and left no effect at all.
    runs = await query(engine, "SELECT status FROM job_runs WHERE job = :j", j=RELEASE_JOB)
    assert [r.status for r in runs] == ["running"]
    untouched = await scalar(
        engine,
        "SELECT count(*) FROM claims WHERE status = 'under_review' AND version = 1"
        " AND reviewer_id IS NOT NULL",
    )
    logged = await scalar(engine, "SELECT count(*) FROM event_log")
    queued = await scalar(engine, "SELECT count(*) FROM outbox")
    assert (untouched, logged, queued) == (claims, 0, 0)

    code, out = await jobstream(settings, "jobs", "run", RELEASE_JOB, "--actor", "faults")
    assert code == 0, out
    code, again = await jobstream(settings, "jobs", "run", RELEASE_JOB, "--actor", "faults")
    assert code == 0 and "nothing to change" in again, again

    states = Counter(
        (r.status, r.version, r.reviewer_id)
        for r in await query(engine, "SELECT status, version, reviewer_id FROM claims")
    )
    assert states == {("submitted", 2, None): claims}
    log = await query(
        engine,
        "SELECT entity_id, event_id::text AS event_id FROM event_log WHERE event_type = :t",
        t=TIMEOUT_RELEASED,
    )
    per_claim = Counter(r.entity_id for r in log)
    assert set(per_claim) == ids and set(per_claim.values()) == {1}
    outbox = await query(engine, "SELECT key, event_id::text AS event_id FROM outbox")
    assert Counter(r.key for r in outbox) == per_claim
    assert {r.event_id for r in outbox} == {r.event_id for r in log}

    async def drained() -> bool:
        return await published(engine) >= claims

    await until(drained, timeout=300, what="every release published", cluster=cluster)
    seen = await deliveries(engine, settings, settings.topic(OUT_TOPIC), timeout=300)
    runs = await query(engine, "SELECT status, affected FROM job_runs ORDER BY id")
    figures(
        claims=claims,
        kills=1,
        point="jobs.before_commit",
        released=sum(per_claim.values()),
        event_log_rows=len(log),
        outbox_rows=len(outbox),
        records_seen=seen.records,
        lost=len(seen.lost),
        duplicated=seen.duplicates,
        unexpected=len(seen.unexpected),
    )
    assert [(r.status, r.affected) for r in runs] == [
        ("running", None),
        ("succeeded", claims),
        ("succeeded", 0),
    ]
    assert seen.ok and seen.duplicates == 0 and seen.rows == claims, str(seen)
