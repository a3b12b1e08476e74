"""Shared benchmark plumbing: a stack to run on and a fresh database per scenario."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import Settings
from service.embedded import broker_profile

console = Console()
if not console.is_terminal:  # a file or a pipe: keep the tables whole for the README
    console.width = max(console.width, 160)


@contextlib.contextmanager
def bench_stack(settings: Settings, *, broker: bool = False) -> Iterator[Settings]:
    """Use the configured servers, or start embedded ones in ``state_dir/bench``."""
    updates: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        state = Path(settings.state_dir).resolve() / "bench"
        state.mkdir(parents=True, exist_ok=True)
        if settings.database_url is None:
            from service.embedded import EmbeddedPostgres

            pg = EmbeddedPostgres(state)
            updates["database_url"] = pg.start()
            stack.callback(pg.stop)
        if broker and not settings.kafka_bootstrap_servers:
            from service.embedded import EmbeddedBroker

            b = EmbeddedBroker(state)
            updates["kafka_bootstrap_servers"] = b.start()
            updates.update(broker_profile(settings.model_fields_set))
            stack.callback(b.stop)
        yield settings.with_overrides(**updates)


async def fresh_database(server_url: str, name: str) -> str:
    """Drop and recreate ``name`` on the server, migrate it, return its URL."""
    from service.db.migrate import upgrade_async

    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    await upgrade_async(url)
    return url


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cores() -> int:
    return os.cpu_count() or 1


def machine() -> str:
    """Core count and load average, for every table's title: figures are only as quiet as this."""
    one, five, _ = os.getloadavg()
    return f"{cores()} cores, load {one:.2f}/{five:.2f}"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return "—" if seconds != seconds else f"{seconds * 1000:,.1f}"


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment that gives a ``jobstream`` subprocess these settings.

    ``JOBSTREAM_*`` variables the benchmark itself was started with pass through, so
    ``JOBSTREAM_BATCH_MAX_WAIT_MS=5 jobstream bench pipeline`` tunes the worker too.
    """
    env = dict(os.environ)
    env.update(settings.as_env())
    env.update(
        JOBSTREAM_KAFKA_IDEMPOTENT_PRODUCER=str(settings.kafka_idempotent_producer).lower(),
        JOBSTREAM_LOG_LEVEL="WARNING",
        JOBSTREAM_LOG_JSON="false",
        JOBSTREAM_CONFIG_FILE="/nonexistent/jobstream.toml",
    )
    env.update({f"JOBSTREAM_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class Process:
    """A server process under test (worker, relay, peer): started, measured, stopped.

    Its peak resident memory is ``VmHWM`` from ``/proc/<pid>/status``, read just
    before it is stopped; its output goes to ``log`` so a crash can be shown. With
    ``BENCH_PROFILE_DIR`` set (and pyinstrument installed), a Python server process
    runs under pyinstrument and leaves ``<log name>.txt`` there.
    """

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        profiles = os.environ.get("BENCH_PROFILE_DIR")
        if profiles and argv[:2] == [sys.executable, "-m"]:
            # pyinstrument writes where the time went when the process exits
            out = Path(profiles).resolve() / f"{log.stem}.txt"
            argv = [sys.executable, "-m", "pyinstrument", "-o", str(out), *argv[1:]]
        self.argv = argv
        self.env = env
        self.log = log
        self.peak_rss_mb = float("nan")
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @classmethod
    def jobstream(cls, role: str, env: dict[str, str], log: Path) -> Process:
        return cls([sys.executable, "-m", "service.cli.main", role], env, log)

    def __enter__(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("wb")
        self._proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._out, stderr=subprocess.STDOUT
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def check(self) -> None:
        """Raise with the log tail if the process died."""
        if self._proc is not None and self._proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.argv[-1]} exited with {self._proc.returncode}:\n{tail}")

    def read_peak_rss(self) -> float:
        """Peak resident set size in MB, summed over the process and its children."""
        total = 0.0
        for pid in [self.pid, *_children(self.pid)]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
        self.peak_rss_mb = total or self.peak_rss_mb
        return self.peak_rss_mb

    def stop(self, timeout: float = 20) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self.read_peak_rss()
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._out is not None:
            self._out.close()
        self._proc = None


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (a prefork pool's workers count towards its memory)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_children(int(child))]
    return found


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
