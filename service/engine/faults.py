"""Test-only crash points: named places where a fault-injection run kills its own process.

``JOBSTREAM_CRASH_AT=processing.after_commit:3`` makes the third pass through that
point SIGKILL the process, the way a power cut or an OOM kill would: no cleanup,
no flush, no goodbye. Unset (always, outside the fault suite), a crash point costs
one attribute read.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from service.config import Settings

#: Every crash point, so a typo in a fault scenario fails loudly instead of never firing.
POINTS = frozenset(
    {
        "processing.before_commit",  # the batch's transaction is about to commit
        "processing.after_commit",  # committed; the Kafka offsets are not
        "relay.after_publish",  # the broker has the batch; the rows are not marked published
        "jobs.before_commit",  # a job's statements ran; its transaction has not committed
    }
)
_passes: Counter[str] = Counter()


def parse(spec: str) -> tuple[str, int]:
    name, _, nth = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")
    return name, int(nth or 1)


def crash_point(settings: Settings, name: str) -> None:
    """SIGKILL this process if ``settings.crash_at`` names this point and its pass count."""
    if settings.crash_at is None:
        return
    target, nth = parse(settings.crash_at)
    if target != name:
        return
    _passes[name] += 1
    if _passes[name] >= nth:
        os.kill(os.getpid(), signal.SIGKILL)
