"""Fault-suite fixtures: a cluster of real processes per test, sizes, and the figures table.

``make test`` runs every scenario at its short size; ``make test-faults`` sets
``JOBSTREAM_FAULTS=long`` for the sizes the reliability report quotes. Each scenario
records its figures (events, kills, lost, duplicated, recovery time...) with the
``figures`` fixture; they are printed as one table at the end of the run and
appended to ``.jobstream/faults.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.claims import CLAIMS_INBOUND_TOPIC
from service.config import Settings
from service.engine.kafka import ensure_topics
from tests.faults.harness import Cluster

LONG = os.environ.get("JOBSTREAM_FAULTS", "short") == "long"
RESULTS: list[dict[str, Any]] = []


def size(short: int, long: int) -> int:
    """The scenario's size: ``long`` under ``make test-faults``, ``short`` in ``make test``."""
    return long if LONG else short


@pytest.fixture
async def cluster(settings: Settings, tmp_path: Path) -> AsyncIterator[Cluster]:
    """Processes of one scenario; all are stopped at the end, their logs kept in tmp_path."""
    await ensure_topics(settings, [settings.topic(CLAIMS_INBOUND_TOPIC)])
    c = Cluster(settings, tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """Record a scenario's figures for the summary table and the results file."""
    started = time.monotonic()
    row: dict[str, Any] = {}

    def record(**values: Any) -> None:
        row.update(values)

    yield record
    if row:
        row = {"scenario": request.node.name, "size": "long" if LONG else "short", **row}
        row["seconds"] = round(time.monotonic() - started, 1)
        RESULTS.append(row)
        out = Path(".jobstream")
        out.mkdir(exist_ok=True)
        with (out / "faults.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault suite figures")
    for row in RESULTS:
        terminalreporter.write_line(", ".join(f"{k}={v}" for k, v in row.items()))
