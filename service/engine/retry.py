"""Retry as a pure policy: given an attempt and an error, decide where the message goes.

No I/O and no sleeping: the processing path publishes to whatever this returns.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from service.errors import InvalidTransition, NonRetryable, Retryable


class ErrorClass(StrEnum):
    RETRYABLE = "retryable"
    NON_RETRYABLE = "non_retryable"
    INVALID_TRANSITION = "invalid_transition"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class RetryDecision:
    """Send to retry tier ``tier`` (1-based), due after ``delay_s`` seconds."""

    tier: int
    delay_s: float


@dataclass(frozen=True)
class DeadLetterDecision:
    error_class: ErrorClass


Decision = RetryDecision | DeadLetterDecision


def _transient_types() -> tuple[type[BaseException], ...]:
    """Infrastructure errors that usually go away: connections, timeouts, locks."""
    types: list[type[BaseException]] = [
        ConnectionError,
        TimeoutError,
        asyncio.TimeoutError,
        OSError,
    ]
    try:
        import asyncpg

        types += [
            asyncpg.exceptions.SerializationError,
            asyncpg.exceptions.DeadlockDetectedError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.TooManyConnectionsError,
            asyncpg.exceptions.InterfaceError,
        ]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError

        types += [OperationalError]
        _ = DBAPIError
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


TRANSIENT = _transient_types()


def classify(
    error: BaseException,
    retryable: tuple[type[BaseException], ...] = (),
    non_retryable: tuple[type[BaseException], ...] = (),
) -> ErrorClass:
    """Map an exception to its class; a handler's own declarations win."""
    if isinstance(error, non_retryable):
        return ErrorClass.NON_RETRYABLE
    if isinstance(error, retryable):
        return ErrorClass.RETRYABLE
    if isinstance(error, InvalidTransition):
        return ErrorClass.INVALID_TRANSITION
    if isinstance(error, NonRetryable):
        return ErrorClass.NON_RETRYABLE
    if isinstance(error, Retryable):
        return ErrorClass.RETRYABLE
    cause = getattr(error, "orig", None) or error.__cause__
    if isinstance(error, TRANSIENT) or (cause is not None and isinstance(cause, TRANSIENT)):
        return ErrorClass.RETRYABLE
    # Unknown errors are retried: a bug fixed by a deploy should not lose the message,
    # and after the last tier it is dead-lettered as exhausted anyway.
    return ErrorClass.RETRYABLE


def decide(
    attempt: int,
    error_class: ErrorClass,
    delays_s: Sequence[float],
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> Decision:
    """``attempt`` is the number of attempts made so far (1 after the first failure)."""
    if error_class is not ErrorClass.RETRYABLE:
        return DeadLetterDecision(error_class)
    if attempt > len(delays_s):
        return DeadLetterDecision(ErrorClass.EXHAUSTED)
    base = delays_s[attempt - 1]
    spread = base * jitter * (rng or random).random() if jitter else 0.0
    return RetryDecision(tier=attempt, delay_s=base + spread)
