"""Crash: SIGKILL the worker at random moments mid-stream and restart it each time.

Nothing may be lost or applied twice: the inbox, the event log and the offsets are
committed in an order that makes every crash either "not yet decided" (redelivered,
applied once) or "decided" (redelivered, dropped by the inbox).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from tests.faults.checker import check
from tests.faults.conftest import size
from tests.faults.harness import Cluster, processed, progress_after, publish_stream, settle, until
from tests.faults.stream import claim_stream

pytestmark = pytest.mark.integration


async def test_worker_killed_at_random_moments_loses_and_doubles_nothing(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    stream = claim_stream(size(2_000, 20_000), seed=11)
    kills = size(2, 6)
    rng = random.Random(5)
    valid = len(stream.valid)
    marks = sorted(rng.sample(range(valid // 10, valid * 8 // 10), kills))
    cluster.start("relay")
    worker = cluster.start("worker")
    # Publish at a rate that keeps the stream flowing through every kill and restart.
    producer = asyncio.create_task(
        publish_stream(settings, stream.entries, per_second=len(stream) / (8.0 * kills))
    )
    recoveries: list[float] = []
    killed_at: list[int] = []
    for mark in marks:

        async def reached(mark: int = mark) -> bool:
            return await processed(engine) >= mark

        await until(reached, timeout=120, what=f"{mark} events applied", cluster=cluster)
        worker.kill()
        at = await processed(engine)
        killed_at.append(at)
        worker = cluster.restart(worker)
        recoveries.append(await progress_after(engine, at, timeout=120, cluster=cluster))
    await producer

    await settle(engine, settings, stream, timeout=180, cluster=cluster)
    verdict = await check(engine, settings, stream)
    figures(
        **verdict.figures,
        kills=len(killed_at),
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated),
        unexpected=len(verdict.unexpected),
        recovery_max_s=round(max(recoveries), 1),
    )
    assert all(at < valid for at in killed_at), f"a kill came after the stream: {killed_at}"
    assert verdict.ok, str(verdict)
