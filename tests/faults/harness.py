"""Real jobstream processes for the fault suite: start, SIGKILL, restart, watch progress.

Each role runs as ``python -m service.cli.main ROLE`` with the test's Settings passed
through the environment, exactly as a deployment passes them; its output goes to a
log file that a failing test prints.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.engine.kafka import KafkaPublisher
from tests.faults.stream import Entry, Stream
from tests.helpers import scalar


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """This environment without its ``JOBSTREAM_*`` variables, plus ``settings``'s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTREAM_")}
    return {**env, **settings.as_env(**overrides)}


@dataclass
class Process:
    """One running role; ``kill`` is SIGKILL (no cleanup), ``stop`` is a graceful SIGTERM."""

    role: str
    name: str
    log: Path
    popen: subprocess.Popen[bytes]
    kills: int = 0

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)
        self.kills += 1

    def stop(self, timeout: float = 30) -> int:
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    """The processes of one scenario, all sharing one database, broker, prefix and group."""

    settings: Settings
    logs: Path
    env: dict[str, Any] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def start(self, role: str, name: str | None = None, **overrides: Any) -> Process:
        name = name or f"{role}-{sum(p.role == role for p in self.processes) + 1}"
        log = self.logs / f"{name}.log"
        env = settings_env(self.settings, **{**self.env, **overrides})
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "service.cli.main", role],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Process(role, name, log, popen)
        self.processes.append(proc)
        return proc

    def restart(self, proc: Process, **overrides: Any) -> Process:
        """A new process in the place of a dead one, with the same name and log."""
        assert not proc.alive, f"{proc.name} is still running"
        fresh = self.start(proc.role, proc.name, **overrides)
        fresh.kills = proc.kills
        return fresh

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()

    def report(self) -> str:
        """The end of every process's log, for a failing test's message."""
        return "\n".join(
            f"----- {p.name} (exit {p.popen.returncode}) -----\n{p.tail()}" for p in self.processes
        )


async def processed(engine: AsyncEngine, consumer: str = "claims") -> int:
    """How many messages ``consumer`` has applied (its inbox rows)."""
    return int(
        await scalar(
            engine, "SELECT count(*) FROM processed_messages WHERE consumer = :c", c=consumer
        )
    )


async def until(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float,
    what: str,
    cluster: Cluster | None = None,
    interval: float = 0.1,
) -> Any:
    """Poll ``check`` until truthy; on timeout fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    logs = cluster.report() if cluster else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}\n{logs}")


async def progress_after(
    engine: AsyncEngine, count: int, timeout: float, cluster: Cluster
) -> float:
    """Seconds until the inbox grows past ``count`` (a restarted worker's recovery time)."""
    started = time.monotonic()

    async def moved() -> bool:
        return await processed(engine) > count

    await until(moved, timeout=timeout, what="progress after a restart", cluster=cluster)
    return time.monotonic() - started


async def publish_stream(
    settings: Settings, entries: Sequence[Entry], *, per_second: float | None = None
) -> None:
    """Publish ``entries`` in order to the claims topic, at ``per_second`` if given."""
    topic = settings.topic(CLAIMS_INBOUND_TOPIC)
    pub = KafkaPublisher(settings)
    await pub.start()
    try:
        chunk = 50
        started = time.monotonic()
        for i in range(0, len(entries), chunk):
            if per_second:
                due = started + i / per_second
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await pub.send_many(
                (topic, e.value, e.key.encode(), []) for e in entries[i : i + chunk]
            )
    finally:
        await pub.stop()


async def jobstream(
    settings: Settings, *args: str, timeout: float = 300, **overrides: Any
) -> tuple[int, str]:
    """Run ``jobstream ARGS`` in a child process with ``settings`` (plus ``overrides``).

    Returns (exit code, output); a process killed by a crash point exits with -SIGKILL.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli.main",
        *args,
        env={**settings_env(settings, **overrides), "COLUMNS": "250"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode if proc.returncode is not None else 0, out.decode(errors="replace")


RELEASE_JOB = "claims.release-orphaned"
#: The first slot of the release rounds (a job takes its slot as its now).
RELEASE_BASE = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def orphan_claims(
    engine: AsyncEngine, claims: int, *, prefix: str = "o", now: datetime = RELEASE_BASE
) -> list[str]:
    """``claims`` claims under review since ten days before ``now`` (orphaned); their ids."""
    ids = [f"{prefix}-{i:06}" for i in range(claims)]
    at = now - timedelta(days=10)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO claims (id, task_id, member_id, status, reviewer_id, submitted_at,"
                " review_started_at, updated_at) SELECT id, 'task-' || id, 'm-' || id,"
                " 'under_review', 'r-' || id, :at, :at, :at FROM unnest(CAST(:ids AS text[])) id"
            ),
            {"ids": ids, "at": at},
        )
    return ids


async def release_rounds(
    engine: AsyncEngine,
    settings: Settings,
    claims: int,
    rounds: int,
    *,
    prefix: str = "o",
    first_round: int = 0,
) -> int:
    """Outbox rows written by the real release-orphaned job, ``rounds`` rows per key.

    ``claims`` claims are orphaned and released ``rounds`` times (each round puts
    them back under review, then runs the job for the next day's slot), so each
    key gets one ``claim.timeout_released`` row per round, in outbox-id order.
    ``first_round`` > 0 continues an earlier call (same claims, later slots). Returns how
    many rows the job wrote.
    """
    from service.app import Runtime

    ids = [f"{prefix}-{i:06}" for i in range(claims)]
    if first_round == 0:
        await orphan_claims(engine, claims, prefix=prefix)
    rt = Runtime(settings, engine)
    total = 0
    for r in range(first_round, first_round + rounds):
        now = RELEASE_BASE + timedelta(days=r)
        if r:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        "UPDATE claims SET status = 'under_review', reviewer_id = 'r-' || id,"
                        " review_started_at = :at, updated_at = :at"
                        " WHERE id = ANY(CAST(:ids AS text[]))"
                    ),
                    {"ids": ids, "at": now - timedelta(days=10)},
                )
        outcome = await rt.run_job(RELEASE_JOB, now=now, actor="faults")
        assert outcome.status == "succeeded" and outcome.result is not None, outcome
        assert outcome.result.affected == claims, outcome.result.affected
        total += outcome.result.affected
    return total


async def settle(
    engine: AsyncEngine, settings: Settings, stream: Stream, *, timeout: float, cluster: Cluster
) -> None:
    """Wait until ``stream`` has settled; on timeout fail with the checker's verdict so far."""
    from tests.faults.checker import check, settled

    async def done() -> bool:
        return await settled(engine, settings, stream)

    try:
        await until(done, timeout=timeout, what="the stream settled")
    except AssertionError as exc:
        verdict = await check(engine, settings, stream)
        raise AssertionError(f"{exc}\nverdict so far: {verdict}\n{cluster.report()}") from None
