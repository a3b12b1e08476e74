"""Soak: a long claim stream through one worker and the relay; the worker must not grow.

The worker's resident memory (VmRSS of the subprocess) is sampled throughout; at
the end it must be within 10 % of what it was once the first 100,000 of 1,000,000
events (10,000 of 50,000 in the short run) had been applied.

The stream is made and published a chunk at a time (``claim_chunks``), and checked
with a cheap oracle instead of event by event: the inbox holds exactly the stream's
event count; the claims table has one row per claim, the sum of their versions is
the number of events and their statuses count as the paths say; the event log has
one row per event (as many distinct causation ids as rows); nothing is dead, parked
or unpublished. A lost event shows as a missing inbox row or version, a doubled one
as an extra version or log row, and aggregates cost the same at any size.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from tests.faults.conftest import size
from tests.faults.harness import Cluster, processed, publish_stream, until
from tests.faults.stream import Tally, claim_chunks
from tests.helpers import scalar

# A million events take 10 to 25 minutes on two shared cores: more than the suite's
# per-test limit (make test-faults: 1800 s) when the machine is busy.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(180, 3600))]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc/PID/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class Memory:
    """(seconds, events applied, worker RSS MB) samples."""

    samples: list[tuple[float, int, float]] = field(default_factory=list)

    def at(self, applied: int) -> float:
        """RSS at the first sample with at least ``applied`` events applied."""
        return next(rss for _, n, rss in self.samples if n >= applied)

    @property
    def peak(self) -> float:
        return max(rss for *_, rss in self.samples)

    @property
    def end(self) -> float:
        return self.samples[-1][2]


async def test_a_long_stream_leaves_the_worker_memory_flat(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    total = size(50_000, 1_000_000)
    baseline_at = size(10_000, 100_000)
    cluster.start("relay")
    worker = cluster.start("worker")
    memory = Memory()
    tally = Tally()

    async def sample() -> None:
        while True:
            n = await processed(engine)
            memory.samples.append((time.monotonic(), n, rss_mb(worker.popen.pid)))
            await asyncio.sleep(0.5)

    async def produce() -> None:
        for part in claim_chunks(total, chunk=size(10_000, 50_000), seed=41):
            tally.add(part)
            await publish_stream(settings, part.entries)

    sampler = asyncio.create_task(sample())
    try:
        began = time.monotonic()
        await produce()
        published = time.monotonic() - began

        async def done() -> bool:
            waiting = await scalar(
                engine,
                "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM parked_keys)",
            )
            return await processed(engine) >= tally.events and waiting == 0

        await until(done, timeout=size(150, 3000), what="the stream applied", cluster=cluster)
        took = time.monotonic() - began
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    assert worker.alive, "the worker died during the soak"
    memory.samples.append((time.monotonic(), await processed(engine), rss_mb(worker.popen.pid)))

    found = await oracle(engine)
    expected = {
        "inbox": tally.events,
        "claims": tally.claims,
        "versions": tally.events,
        "log_rows": tally.events,
        "logged_events": tally.events,
        "by_status": dict(tally.by_status),
        "dead": 0,
        "parked": 0,
        "unpublished": 0,
    }
    baseline = memory.at(baseline_at)
    change = (memory.end - baseline) / baseline * 100
    figures(
        events=tally.events,
        claims=tally.claims,
        events_per_s=round(tally.events / took),
        publish_s=round(published, 1),
        lost=max(0, tally.events - found["inbox"]) + max(0, tally.events - found["versions"]),
        duplicated=max(0, found["versions"] - tally.events)
        + found["log_rows"]
        - found["logged_events"],
        rss_baseline_mb=round(baseline, 1),
        rss_peak_mb=round(memory.peak, 1),
        rss_end_mb=round(memory.end, 1),
        rss_change_pct=round(change, 1),
        baseline_after=baseline_at,
    )
    assert found == expected
    assert change <= 10, f"worker RSS grew {change:.1f} % after the first {baseline_at} events"


async def oracle(engine: AsyncEngine) -> dict[str, object]:
    """The aggregates the cheap oracle compares (see the module docstring)."""
    statuses = await scalar(
        engine, "SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM"
        " (SELECT status, count(*) AS n FROM claims GROUP BY status) s"
    )  # fmt: skip
    found: dict[str, object] = {
        "inbox": "SELECT count(*) FROM processed_messages WHERE consumer = 'claims'",
        "claims": "SELECT count(*) FROM claims",
        "versions": "SELECT coalesce(sum(version), 0) FROM claims",
        "log_rows": "SELECT count(*) FROM event_log WHERE entity_type = 'claim'",
        "logged_events": "SELECT count(DISTINCT causation_id) FROM event_log"
        " WHERE entity_type = 'claim'",
        "dead": "SELECT count(*) FROM dead_letters",
        "parked": "SELECT (SELECT count(*) FROM parked_keys)"
        " + (SELECT count(*) FROM parked_messages)",
        "unpublished": "SELECT count(*) FROM outbox WHERE published_at IS NULL",
    }
    for name, sql in list(found.items()):
        found[name] = int(await scalar(engine, str(sql)))
    found["by_status"] = dict(Counter({str(k): int(v) for k, v in statuses.items()}))
    return found
