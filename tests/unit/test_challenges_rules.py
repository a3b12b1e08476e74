"""Challenge rules: every (state, event) pair, event-time boundaries, the 80 % outcome,
local days across DST changes, streak reminders and notification retention."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.challenges import ChallengeCreated, ChallengeMemberJoined, ChallengeProgressRecorded
from service.errors import InvalidTransition
from service.workflows.challenges import rules
from service.workflows.challenges.rules import Challenge, ChallengeStatus, Member

S = ChallengeStatus
T0 = datetime(2026, 11, 1, tzinfo=UTC)
END = T0 + timedelta(days=30)
H = timedelta(hours=1)


def ev(cls: type[Any], time: datetime, **data: Any) -> Any:
    return cls(id="e", source="/test", time=time, data=data)


def created(time: datetime = T0 - H) -> ChallengeCreated:
    result: ChallengeCreated = ev(
        ChallengeCreated, time, challenge_id="ch", title="Walk", starts_at=T0, ends_at=END
    )
    return result


def joined(time: datetime = T0 + H, user: str = "u") -> ChallengeMemberJoined:
    result: ChallengeMemberJoined = ev(ChallengeMemberJoined, time, challenge_id="ch", user_id=user)
    return result


def progress(rate: str, time: datetime = T0 + 2 * H) -> ChallengeProgressRecorded:
    result: ChallengeProgressRecorded = ev(
        ChallengeProgressRecorded, time, challenge_id="ch", user_id="u", completion_rate=rate
    )
    return result


def challenge_in(status: ChallengeStatus | None) -> Challenge | None:
    if status is None:
        return None
    closed = None if status is S.ACTIVE else END
    return Challenge("ch", "Walk", status, T0, END, T0 - H, closed_at=closed)


MEMBER = Member("ch", "u", T0 + H)

LEGAL = {
    (None, "challenge.created"): S.ACTIVE,
    (S.ACTIVE, "challenge.member_joined"): S.ACTIVE,
    (S.ACTIVE, "challenge.progress_recorded"): S.ACTIVE,
    (S.ACTIVE, "challenge.completed"): S.COMPLETED,
    (S.ACTIVE, "challenge.failed"): S.FAILED,
}
EVENTS = [
    "challenge.created",
    "challenge.member_joined",
    "challenge.progress_recorded",
    "challenge.completed",
    "challenge.failed",
]
BY_JOBS = {"challenge.completed", "challenge.failed"}
PAIRS = [
    (state, type_)
    for state in [None, *ChallengeStatus]
    for type_ in EVENTS
    if not (state is None and type_ in BY_JOBS)
]


def test_table_matches_the_rules_module() -> None:
    assert rules.ALLOWED == LEGAL
    assert rules.TERMINAL == {S.COMPLETED, S.FAILED}


def step(state: ChallengeStatus | None, type_: str) -> ChallengeStatus:
    challenge = challenge_in(state)
    if type_ == "challenge.created":
        return rules.create(challenge, created()).status
    if type_ == "challenge.member_joined":
        rules.join(challenge, None, joined())
        return S.ACTIVE
    if type_ == "challenge.progress_recorded":
        rules.record_progress(challenge, MEMBER, progress("0.5000"))
        return S.ACTIVE
    assert challenge is not None
    rates = [Decimal(1)] if type_ == "challenge.completed" else [Decimal(0)]
    return rules.close(challenge, rates, END).status


@pytest.mark.parametrize(("state", "type_"), PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_every_state_and_event_pair(state: ChallengeStatus | None, type_: str) -> None:
    expected = LEGAL.get((state, type_))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            step(state, type_)
        assert (caught.value.entity, caught.value.state, caught.value.event_type) == (
            "challenge",
            state,
            type_,
        )
        return
    assert step(state, type_) is expected


@pytest.mark.parametrize(
    ("offset", "ok"), [(-H, True), (-timedelta(microseconds=1), True), (0 * H, False), (H, False)]
)
def test_joining_and_progress_only_before_the_end_by_event_time(
    offset: timedelta, ok: bool
) -> None:
    challenge = challenge_in(S.ACTIVE)
    if ok:
        assert rules.join(challenge, None, joined(END + offset)).joined_at == END + offset
        assert (
            rules.record_progress(challenge, MEMBER, progress("0.5", END + offset)).progress_at
            == END + offset
        )
        return
    with pytest.raises(InvalidTransition, match="active"):
        rules.join(challenge, None, joined(END + offset))
    with pytest.raises(InvalidTransition):
        rules.record_progress(challenge, MEMBER, progress("0.5", END + offset))


def test_a_user_joins_once_and_only_members_record_progress() -> None:
    challenge = challenge_in(S.ACTIVE)
    with pytest.raises(InvalidTransition) as twice:
        rules.join(challenge, MEMBER, joined())
    assert (twice.value.entity, twice.value.entity_id) == ("challenge_member", "ch/u")
    with pytest.raises(InvalidTransition) as stranger:
        rules.record_progress(challenge, None, progress("0.5"))
    assert stranger.value.state is None


def test_the_latest_progress_by_event_time_counts() -> None:
    challenge = challenge_in(S.ACTIVE)
    newer = rules.record_progress(challenge, MEMBER, progress("0.6000", T0 + 5 * H))
    assert newer.completion_rate == Decimal("0.6000")
    stale = rules.record_progress(challenge, newer, progress("0.2000", T0 + 4 * H))
    assert stale == newer
    assert rules.record_progress(
        challenge, newer, progress("0.7", T0 + 5 * H)
    ).completion_rate == Decimal("0.7")


@pytest.mark.parametrize(
    ("rates", "status", "average"),
    [
        ([], S.FAILED, "0.0000"),
        (["0.8"], S.COMPLETED, "0.8000"),
        (["0.7999"], S.FAILED, "0.7999"),
        (["0.9", "0.7"], S.COMPLETED, "0.8000"),
        (["0.8", "0.7999"], S.FAILED, "0.8000"),  # mean 0.79995: below, though it rounds up
        (["1", "1", "0.4"], S.COMPLETED, "0.8000"),
        (["1", "0.5", "0.25"], S.FAILED, "0.5833"),
        (["0", "0"], S.FAILED, "0.0000"),
    ],
)
def test_outcome_at_eighty_percent(rates: list[str], status: ChallengeStatus, average: str) -> None:
    values = [Decimal(r) for r in rates]
    assert rules.outcome(values) is status
    closed = rules.close(challenge_in(S.ACTIVE), values, END)  # type: ignore[arg-type]
    assert (closed.status, closed.average_completion_rate, closed.member_count) == (
        status,
        Decimal(average),
        len(rates),
    )
    assert closed.closed_at == END


rates = st.lists(st.decimals(min_value=0, max_value=1, places=4), max_size=40)


@given(rates)
def test_outcome_is_the_exact_mean_against_the_threshold(values: list[Decimal]) -> None:
    exact = sum((Fraction(v) for v in values), Fraction(0)) / len(values) if values else None
    completed = exact is not None and exact >= Fraction(4, 5)
    assert (rules.outcome(values) is S.COMPLETED) is completed


@pytest.mark.parametrize(
    ("ends", "status", "due"),
    [
        (T0 - H, S.ACTIVE, True),
        (T0, S.ACTIVE, True),
        (T0 + H, S.ACTIVE, False),
        (T0 - H, S.FAILED, False),
    ],
)
def test_due_for_auto_complete(ends: datetime, status: ChallengeStatus, due: bool) -> None:
    closed = None if status is S.ACTIVE else ends
    challenge = Challenge("ch", "t", status, ends - 9 * H, ends, ends - 10 * H, closed_at=closed)
    assert rules.is_due(challenge, T0) is due


@pytest.mark.parametrize(
    ("tz", "now", "day", "midnight"),
    [
        # 08:00 local before and after each change; local midnight keeps the old offset.
        (
            "Europe/Berlin",
            datetime(2026, 3, 28, 7, tzinfo=UTC),
            date(2026, 3, 28),
            datetime(2026, 3, 27, 23, tzinfo=UTC),
        ),
        (
            "Europe/Berlin",
            datetime(2026, 3, 29, 6, tzinfo=UTC),
            date(2026, 3, 29),
            datetime(2026, 3, 28, 23, tzinfo=UTC),
        ),
        (
            "Europe/Berlin",
            datetime(2026, 10, 25, 7, tzinfo=UTC),
            date(2026, 10, 25),
            datetime(2026, 10, 24, 22, tzinfo=UTC),
        ),
        (
            "America/New_York",
            datetime(2026, 10, 31, 12, tzinfo=UTC),
            date(2026, 10, 31),
            datetime(2026, 10, 31, 4, tzinfo=UTC),
        ),
        (
            "America/New_York",
            datetime(2026, 11, 1, 13, tzinfo=UTC),
            date(2026, 11, 1),
            datetime(2026, 11, 1, 4, tzinfo=UTC),
        ),
        (
            "UTC",
            datetime(2026, 11, 1, 8, tzinfo=UTC),
            date(2026, 11, 1),
            datetime(2026, 11, 1, tzinfo=UTC),
        ),
    ],
)
def test_local_day_across_dst_changes(
    tz: str, now: datetime, day: date, midnight: datetime
) -> None:
    assert rules.local_date(now, tz) == day
    assert rules.local_day_start(now, tz) == midnight


BERLIN = "Europe/Berlin"
SLOT = datetime(2026, 3, 29, 6, tzinfo=UTC)  # 08:00 CEST, the day clocks went forward
RUNNING = Challenge("ch", "t", S.ACTIVE, SLOT - timedelta(days=5), SLOT + timedelta(days=5), T0)


@pytest.mark.parametrize(
    ("progress_at", "reminded_on", "challenge", "due"),
    [
        (None, None, RUNNING, True),
        (datetime(2026, 3, 28, 22, 30, tzinfo=UTC), None, RUNNING, True),  # 23:30 local, yesterday
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), None, RUNNING, False),  # 00:30 local, today
        (None, date(2026, 3, 29), RUNNING, False),  # already reminded today
        (None, date(2026, 3, 28), RUNNING, True),
        (
            None,
            None,
            Challenge("ch", "t", S.ACTIVE, SLOT + timedelta(days=1), SLOT + timedelta(days=5), T0),
            False,
        ),
        (None, None, Challenge("ch", "t", S.ACTIVE, SLOT - timedelta(days=5), SLOT, T0), False),
        (
            None,
            None,
            Challenge("ch", "t", S.FAILED, SLOT - timedelta(days=5), SLOT + timedelta(days=5), T0),
            False,
        ),
    ],
)
def test_streak_reminder(
    progress_at: datetime | None, reminded_on: date | None, challenge: Challenge, due: bool
) -> None:
    member = Member("ch", "u", SLOT - timedelta(days=5), Decimal("0.1"), progress_at)
    assert rules.needs_streak_reminder(BERLIN, reminded_on, [(challenge, member)], SLOT) is due


def test_no_running_challenge_means_no_streak_reminder() -> None:
    assert not rules.needs_streak_reminder(BERLIN, None, [], SLOT)


@pytest.mark.parametrize(
    ("age", "purge"),
    [
        (timedelta(days=45), True),
        (timedelta(days=30, microseconds=1), True),
        (timedelta(days=30), False),
        (timedelta(days=29), False),
        (-H, False),
    ],
)
def test_notifications_older_than_thirty_days_are_purgeable(age: timedelta, purge: bool) -> None:
    assert rules.is_purgeable(T0 - age, T0) is purge
    assert rules.is_purgeable(T0 - age, T0, retention_days=60) is False
