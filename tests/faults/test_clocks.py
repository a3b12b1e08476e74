"""Two clocks, one worker: kill the active clock, or cut its lock session; every slot runs once.

A per-second schedule (an engine maintenance job, re-timed through the ``jobs``
setting as a deployment would) ticks through the run. Two ``jobstream clock``
processes compete for the clock's advisory lock; the active one is either SIGKILLed
(its session dies with it) or has its lock connection terminated by PostgreSQL while
the process lives on. The standby must take over within seconds and the deposed
clock must stand down: every slot of the run window gets exactly one run and one
effect, none is missed, and no tick is emitted by two clocks at once.

One duplicate tick is legitimate: a clock SIGKILLed after the broker acked a tick
but before it recorded the slot leaves that slot to the standby, which emits it
again (the tick id and ``job_runs (job, scope, slot)`` dedupe it). A clock whose lock
is cut while it lives must not emit again at all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.jobs import JOBS_TICKS_TOPIC, JobTick
from service.config import Settings
from service.engine.clock import CLOCK_LOCK
from tests.faults.conftest import size
from tests.faults.harness import Cluster, Process, until
from tests.helpers import consume_all, scalar, topic_size

pytestmark = pytest.mark.integration

JOB = "engine.prune-inbox"  # cheap: one DELETE and one event_log row per run
SECOND = timedelta(seconds=1)
Fault = Literal["kill", "terminate"]


def lock_events(proc: Process) -> list[str]:
    """The clock's lock history from its log: acquired / standby / lost, in order."""
    text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
    marks = {"lock acquired": "acquired", "standing by": "standby", "lock lost": "lost"}
    return [word for line in text.splitlines() for mark, word in marks.items() if mark in line]


def active(clocks: list[Process]) -> list[Process]:
    """The clocks whose last word about the lock is that they acquired it."""
    return [c for c in clocks if c.alive and (lock_events(c) or ["?"])[-1] == "acquired"]


async def last_slot(engine: AsyncEngine) -> datetime | None:
    value = await scalar(engine, "SELECT last_slot FROM schedules WHERE job = :j", j=JOB)
    return value if isinstance(value, datetime) else None


async def lock_holders(engine: AsyncEngine) -> list[int]:
    """Backend pids holding the clock lock in this test's database."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objid = :k AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"
            ),
            {"k": CLOCK_LOCK},
        )
        return [r.pid for r in rows]


@dataclass
class Scenario:
    cluster: Cluster
    engine: AsyncEngine
    clocks: list[Process] = field(default_factory=list)

    async def succeeded(self) -> int:
        sql = "SELECT count(*) FROM job_runs WHERE job = :j AND status = 'succeeded'"
        return int(await scalar(self.engine, sql, j=JOB))

    async def more_runs(self, n: int, what: str) -> None:
        """Wait until ``n`` more slots have run (the schedule ticks once a second)."""
        target = await self.succeeded() + n

        async def reached() -> bool:
            return await self.succeeded() >= target

        await until(reached, timeout=60 + 2 * n, what=what, cluster=self.cluster)

    async def wait_log(self, proc: Process, tail: list[str], what: str) -> None:
        async def there() -> bool:
            return lock_events(proc)[-len(tail) :] == tail

        await until(there, timeout=60, what=what, cluster=self.cluster)

    async def inject(self, fault: Fault) -> tuple[datetime, float]:
        """Kill the active clock or cut its lock session; return when and the takeover time."""
        leaders = active(self.clocks)
        assert len(leaders) == 1, f"active clocks: {[c.name for c in leaders]}"
        holders = await lock_holders(self.engine)
        assert len(holders) == 1, f"clock lock held by backends {holders}"
        leader = leaders[0]
        standby = next(c for c in self.clocks if c is not leader)
        acquired = lock_events(standby).count("acquired")
        at = datetime.now(UTC)
        started = time.monotonic()
        if fault == "kill":
            leader.kill()
        else:
            async with self.engine.connect() as conn:
                sql = sa.text("SELECT pg_terminate_backend(:pid)")
                assert await conn.scalar(sql, {"pid": holders[0]}), "lock session survived"

        async def taken_over() -> bool:
            moved = (await last_slot(self.engine) or at) > at
            return moved and lock_events(standby).count("acquired") > acquired

        await until(taken_over, timeout=60, what=f"takeover after a {fault}", cluster=self.cluster)
        takeover = time.monotonic() - started
        if fault == "kill":
            back = self.cluster.restart(leader)
            self.clocks[self.clocks.index(leader)] = back
            await self.wait_log(back, ["standby"], "the restarted clock standing by")
        else:
            await self.wait_log(leader, ["lost", "standby"], "the cut-off clock standing down")
        return at, takeover


async def test_two_clocks_one_killed_or_cut_off_every_slot_runs_once(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    faults: list[Fault] = ["kill", "terminate"] * size(1, 3)
    between = size(2, 8)  # slots run undisturbed before each fault
    cluster.env["jobs"] = {JOB: {"cron": "* * * * * *", "overlap": "queue"}}
    run = Scenario(cluster, engine)
    cluster.start("worker")
    run.clocks.append(cluster.start("clock", "clock-a"))

    async def first_sight() -> bool:
        return await last_slot(engine) is not None

    await until(first_sight, timeout=60, what="first sight of the schedule", cluster=cluster)
    run.clocks.append(cluster.start("clock", "clock-b"))
    await run.wait_log(run.clocks[1], ["standby"], "the second clock standing by")

    takeovers: list[float] = []
    fault_times: list[tuple[Fault, datetime]] = []
    for fault in faults:
        await run.more_runs(between, f"{between} slots run before the {fault}")
        at, takeover = await run.inject(fault)
        fault_times.append((fault, at))
        takeovers.append(takeover)
    await run.more_runs(between, f"{between} slots run after the faults")
    for c in run.clocks:
        c.stop()
    last = await last_slot(engine)
    assert last is not None and last > fault_times[-1][1] + SECOND, "nothing ran after the faults"

    async def all_ran() -> bool:
        sql = "SELECT count(*) FROM job_runs WHERE job = :j AND status <> 'succeeded'"
        return await scalar(engine, sql, j=JOB) == 0

    await until(all_ran, timeout=90, what="every emitted slot's run finished", cluster=cluster)

    runs, effects = await outcome(engine)
    slots = [r.slot for r in runs]
    window = [slots[0] + SECOND * i for i in range(int((last - slots[0]) / SECOND) + 1)]
    ticked = await ticks(settings)
    doubled = sorted(s for s, n in ticked.items() if n > 1)
    kills = [at for fault, at in fault_times if fault == "kill"]
    explained = [s for s in doubled if any(abs(s - at) <= 3 * SECOND for at in kills)]
    figures(
        slots=len(window),
        runs=len(runs),
        kills=len(kills),
        lock_cuts=len(fault_times) - len(kills),
        missed=len(set(window) - set(slots)),
        duplicated=len(slots) - len(set(slots)) + sum(n - 1 for n in effects.values() if n > 1),
        doubled_ticks=len(doubled),
        takeover_max_s=round(max(takeovers), 1),
    )
    assert slots == window, f"slots missing or run twice: {sorted(set(window) ^ set(slots))[:10]}"
    assert {r.status for r in runs} == {"succeeded"}
    assert all(effects[s] == 1 for s in window), "a slot's effect is missing or doubled"
    assert sum(effects.values()) == len(window), "an effect no slot explains"
    assert set(ticked) >= set(window), "a slot ran without a tick on the topic"
    # Two clocks emitting side by side would double every slot after the fault.
    assert doubled == explained and len(doubled) <= len(kills), (
        f"ticks emitted twice: {doubled}; faults at {fault_times}"
    )
    assert max(takeovers) < 30, f"takeover times {takeovers}"


async def outcome(engine: AsyncEngine) -> tuple[list[sa.Row[Any]], Counter[datetime]]:
    """The job's runs by slot, and its effects (event_log rows) counted per slot."""
    async with engine.connect() as conn:
        runs = await conn.execute(
            sa.text("SELECT slot, status FROM job_runs WHERE job = :j ORDER BY slot"), {"j": JOB}
        )
        effects = await conn.execute(
            sa.text(
                "SELECT occurred_at FROM event_log WHERE event_type = 'maintenance.pruned'"
                " AND entity_id = 'processed_messages'"
            )
        )
        return list(runs), Counter(r.occurred_at for r in effects)


async def ticks(settings: Settings) -> Counter[datetime]:
    """How many times each slot of the job was emitted on the ticks topic."""
    topic = settings.topic(JOBS_TICKS_TOPIC)
    records = await consume_all(settings, topic, await topic_size(settings, topic))
    parsed = (JobTick.model_validate_json(r.value) for r in records)
    return Counter(t.data.slot for t in parsed if t.data.job == JOB)
