"""Time as a port: the clock reads and waits through it, tests drive a fake one.

``SystemTime`` is the wall clock; ``FakeTime`` moves only when told to, waking
whoever sleeps until a moment it has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol


async def wait_any(*events: asyncio.Event, limit_s: float | None = None) -> None:
    """Return when any event is set, or after ``limit_s`` seconds."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)


class TimeSource(Protocol):
    """Where the clock reads the time and waits for it."""

    def now(self) -> datetime:
        """The current time, UTC."""
        ...

    async def sleep_until(self, when: datetime, wake: asyncio.Event) -> None:
        """Return at ``when``, or as soon as ``wake`` is set."""
        ...


class SystemTime:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime, wake: asyncio.Event) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await wait_any(wake, limit_s=delay)


class FakeTime:
    """A clock that moves only by ``advance``/``set``; sleepers wake when it passes them."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    async def sleep_until(self, when: datetime, wake: asyncio.Event) -> None:
        while self._now < when and not wake.is_set():
            await wait_any(self._moved, wake)
