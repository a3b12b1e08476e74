"""The retry policy is pure: an attempt and an error in, a decision out."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from service.cli.durations import parse_duration, parse_instant
from service.engine.retry import DeadLetterDecision, ErrorClass, RetryDecision, classify, decide
from service.errors import InvalidTransition, NonRetryable, Retryable

DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)


@pytest.mark.parametrize(
    ("attempt", "tier", "delay"), [(1, 1, 1.0), (2, 2, 2.0), (3, 3, 4.0), (4, 4, 8.0), (5, 5, 16.0)]
)
def test_each_failure_goes_one_tier_further(attempt: int, tier: int, delay: float) -> None:
    assert decide(attempt, ErrorClass.RETRYABLE, DELAYS) == RetryDecision(tier, delay)


def test_after_the_last_tier_the_message_is_exhausted() -> None:
    assert decide(6, ErrorClass.RETRYABLE, DELAYS) == DeadLetterDecision(ErrorClass.EXHAUSTED)


@pytest.mark.parametrize("error_class", [ErrorClass.NON_RETRYABLE, ErrorClass.INVALID_TRANSITION])
def test_permanent_errors_are_dead_lettered_at_once(error_class: ErrorClass) -> None:
    assert decide(1, error_class, DELAYS) == DeadLetterDecision(error_class)


@given(st.integers(1, 5), st.floats(0, 1), st.integers(0, 2**32))
def test_jitter_only_ever_delays(attempt: int, jitter: float, seed: int) -> None:
    decision = decide(attempt, ErrorClass.RETRYABLE, DELAYS, jitter, random.Random(seed))
    assert isinstance(decision, RetryDecision)
    base = DELAYS[attempt - 1]
    assert base <= decision.delay_s <= base * (1 + jitter)


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionResetError("reset"), ErrorClass.RETRYABLE),
        (TimeoutError(), ErrorClass.RETRYABLE),
        (asyncpg.exceptions.SerializationError("could not serialize"), ErrorClass.RETRYABLE),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), ErrorClass.RETRYABLE),
        (OperationalError("SELECT 1", {}, ConnectionRefusedError()), ErrorClass.RETRYABLE),
        (Retryable("downstream 503"), ErrorClass.RETRYABLE),
        (NonRetryable("downstream 400"), ErrorClass.NON_RETRYABLE),
        (
            InvalidTransition("claim", "c1", "approved", "claim.approved"),
            ErrorClass.INVALID_TRANSITION,
        ),
    ],
)
def test_errors_are_classified_by_what_the_worker_should_do(
    error: BaseException, expected: ErrorClass
) -> None:
    assert classify(error) is expected


def test_a_handlers_own_declarations_win() -> None:
    assert classify(Flaky(), retryable=(Flaky,)) is ErrorClass.RETRYABLE
    assert classify(Broken(), non_retryable=(Broken,)) is ErrorClass.NON_RETRYABLE
    # even over the built-in classes: this handler knows its timeouts are permanent
    assert classify(TimeoutError(), non_retryable=(TimeoutError,)) is ErrorClass.NON_RETRYABLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d30", "3 fortnights", "-1d"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="90s, 15m, 12h, 30d"):
        parse_duration(text)


def test_instants_are_iso_times_or_durations_ago() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert parse_instant("2h", now) == now - timedelta(hours=2)
    assert parse_instant("2026-11-01T09:00:00") == datetime(2026, 11, 1, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_instant("yesterday")
