"""Test-only fault hooks: crash points, and events that always fail or run slowly.

``JOBSTREAM_CRASH_AT=processing.after_commit:3`` makes the third pass through that
point SIGKILL the process, the way a power cut or an OOM kill would: no cleanup,
no flush, no goodbye. Unset (always, outside the fault suite), a crash point costs
one attribute read.

``JOBSTREAM_FAULT_FAIL_SOURCE=/faults/fail`` makes every event whose CloudEvents
``source`` is that value fail with a transient error on every attempt (it goes
through every retry tier and is dead-lettered as exhausted);
``JOBSTREAM_FAULT_SLOW_SOURCE`` with ``JOBSTREAM_FAULT_SLOW_S`` makes the handler
take that long for each such event. Both let the fault suite mix always-failing and
slow events into a real stream handled by a real workflow.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from service.config import Settings

if TYPE_CHECKING:
    from schemas.envelope import CloudEvent

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


class InjectedFault(ConnectionError):
    """A transient failure that a fault scenario asked for (retried, then exhausted).

    It names its event, as a handler's error may, so a batch is split right there.
    """

    def __init__(self, event_id: str) -> None:
        super().__init__(f"injected failure for event {event_id}")
        self.event_id = event_id


async def injected(settings: Settings, events: Sequence[CloudEvent]) -> None:
    """Apply the configured event faults to ``events`` before their handler runs."""
    if settings.fault_slow_source is not None:
        slow = sum(e.source == settings.fault_slow_source for e in events)
        if slow:
            await asyncio.sleep(slow * settings.fault_slow_s)
    if settings.fault_fail_source is not None:
        for event in events:
            if event.source == settings.fault_fail_source:
                raise InjectedFault(event.id)
