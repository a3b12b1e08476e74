"""What the embedded PostgreSQL and broker share: errors, ports, process handling."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


class EmbeddedStackError(RuntimeError):
    """An embedded server could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (bind to port 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kill_process(proc: Any, timeout: float) -> None:
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
