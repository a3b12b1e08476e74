"""A TCP proxy that can cut a service off: every connection dropped, new ones refused.

The test PostgreSQL serves the whole test session, so an outage scenario cannot stop
it; the roles under test reach it through this proxy instead, and ``cut()`` makes the
database vanish for them alone: open connections are reset (both ways, so the server
ends those sessions and releases their advisory locks) and new ones are reset as soon
as they are accepted, which a client sees as "connection refused / reset" exactly as
for a stopped server. ``restore()`` lets connections through again.

The proxy runs its own event loop in a thread, so a test that blocks its own loop
(waiting for a process to stop, say) never stalls the traffic it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
#: SO_LINGER on, 0 s: close() sends RST
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass
class ProxyStats:
    accepted: int = 0
    #: connections reset by ``cut()`` (open at the time)
    cut: int = 0
    #: connections attempted while cut, and reset at once
    refused: int = 0
    bytes: int = 0
    cuts: list[tuple[float, float | None]] = field(default_factory=list)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``: (host, port), or a unix socket's path."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.stats = ProxyStats()
        self.port = 0
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    # -- control (from any thread) -------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        self._call(self._listen())
        return self.port

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cut(self) -> int:
        """Reset every open connection and refuse new ones; returns how many were reset."""
        return self._call(self._cut())

    def restore(self) -> None:
        """Let connections through again."""
        self._call(self._restore())

    @property
    def down(self) -> bool:
        return self._down

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # -- the proxy's own loop --------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._down = True
        self._reset_all()
        if self._tasks:  # each ends once its sockets are reset
            await asyncio.wait(self._tasks, timeout=10)

    async def _cut(self) -> int:
        self._down = True
        self.stats.cuts.append((time.monotonic(), None))
        n = self._reset_all()
        self.stats.cut += n
        return n

    async def _restore(self) -> None:
        self._down = False
        started, _ = self.stats.cuts[-1]
        self.stats.cuts[-1] = (started, time.monotonic())

    def _reset_all(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            _reset(writer)
        self._writers.clear()
        return len(writers) // 2

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(client_r, client_w)
        finally:
            self._tasks.discard(task)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        if self._down:
            self.stats.refused += 1
            _reset(client_w)
            return
        self.stats.accepted += 1
        try:
            if isinstance(self.upstream, str):
                server_r, server_w = await asyncio.open_unix_connection(self.upstream)
            else:
                server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_w)
            return
        if self._down:  # cut while we were connecting
            _reset(client_w)
            _reset(server_w)
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(
            self._pipe(client_r, server_w, client_w),
            self._pipe(server_r, client_w, server_w),
        )
        self._writers -= {client_w, server_w}

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await reader.read(65536):
                self.stats.bytes += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # one side ended: end the other side too (a half-open pair is useless here)
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(Exception):
                other.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer sees a reset, as when a server dies."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


@contextlib.contextmanager
def proxied(database_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of ``database_url``'s server, and the URL that goes through it.

    The server may listen on TCP or (the embedded one) on a unix socket, named by the
    URL's ``?host=/dir`` as libpq does; clients always reach the proxy over TCP.
    """
    url = sa.engine.make_url(database_url)
    port = url.port or 5432
    socket_dir = url.query.get("host")
    upstream: tuple[str, int] | str
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        upstream = f"{socket_dir}/.s.PGSQL.{port}"
    else:
        upstream = (url.host or "127.0.0.1", port)
    proxy = TcpProxy(upstream)
    local = proxy.start()
    through = url.difference_update_query(["host"]).set(host="127.0.0.1", port=local)
    try:
        yield proxy, through.render_as_string(hide_password=False)
    finally:
        proxy.stop()
