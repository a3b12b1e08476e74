"""idle: what an idle worker costs, and the broker serving it, in CPU.

Every consumer polls its broker even when nothing arrives; Tansu (the embedded
broker) holds each fetch for the whole ``kafka_fetch_max_wait_ms``, so a shorter
wait buys latency with idle CPU. This starts a worker with nothing to do, lets its
consumers join, and reads the CPU time the worker process and the broker process
used over a window, for each fetch wait asked for.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
from rich.table import Table

from bench.common import Process, bench_stack, console, fresh_database, machine, settings_env
from service.config import Settings

SETTLE_S = 15.0


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _measure(
    settings: Settings, wait_ms: int, window_s: float, broker_pid: int | None
) -> tuple[float, float | None]:
    stamp = f"{int(time.time())}w{wait_ms}"
    url = asyncio.run(fresh_database(settings.require_database_url(), "jobstream_bench_idle"))
    s = settings.with_overrides(
        database_url=url,
        topic_prefix=f"idle{stamp}.",
        group_id=f"bench-idle-{stamp}",
        kafka_fetch_max_wait_ms=wait_ms,
    )
    log = Path(s.state_dir).resolve() / "bench" / "logs" / f"idle-{wait_ms}.log"
    with Process.jobstream("worker", settings_env(s), log) as worker:
        time.sleep(SETTLE_S)  # consumers join their groups; then nothing happens
        worker.check()
        mine = psutil.Process(worker.pid)
        broker = psutil.Process(broker_pid) if broker_pid else None
        w0, b0, t0 = _cpu(mine), _cpu(broker) if broker else 0.0, time.monotonic()
        time.sleep(window_s)
        elapsed = time.monotonic() - t0
        worker_pct = 100 * (_cpu(mine) - w0) / elapsed
        broker_pct = 100 * (_cpu(broker) - b0) / elapsed if broker else None
    return worker_pct, broker_pct


def main(settings: Settings, waits: list[int], window_s: float = 10.0) -> None:
    with bench_stack(settings, broker=True) as s:
        pid_file = Path(s.state_dir).resolve() / "bench" / "tansu.pid"  # the embedded broker's
        broker_pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        rows = [(w, *_measure(s, w, window_s, broker_pid)) for w in waits]
    table = Table(title=f"idle: CPU of a worker with nothing to do ({machine()})")
    for col in ("kafka_fetch_max_wait_ms", "worker % of a core", "broker % of a core"):
        table.add_column(col, justify="right")
    for wait, worker_pct, broker_pct in rows:
        table.add_row(
            str(wait), f"{worker_pct:.1f}", f"{broker_pct:.1f}" if broker_pct is not None else "—"
        )
    console.print(table)
