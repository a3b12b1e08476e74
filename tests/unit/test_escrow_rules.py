"""Escrow rules: every (state, event) pair, time boundaries by event time, release money,
default penalties and the leaderboard's scores and dense ranks."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.escrow import (
    BoostGranted,
    CycleCreated,
    CycleFulfilled,
    DonationConfirmed,
    MatchAccepted,
    MatchCreated,
)
from service.errors import InvalidTransition
from service.workflows.escrow import leaderboard as lb
from service.workflows.escrow import rules
from service.workflows.escrow.leaderboard import Boost
from service.workflows.escrow.rules import (
    Account,
    Cycle,
    CycleStatus,
    Escrow,
    EscrowStatus,
    Match,
    MatchStatus,
)

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
TODAY = date(2026, 11, 1)
H, D = timedelta(hours=1), timedelta(days=1)


def ev(cls: type[Any], time: datetime = T0, **data: Any) -> Any:
    return cls(id="e", source="/test", time=time, data=data)


def donation(time: datetime = T0, **kw: Any) -> DonationConfirmed:
    data = {"escrow_id": "e-1", "donor_id": "d", "recipient_id": "r", "amount": "25.00"} | kw
    result: DonationConfirmed = ev(DonationConfirmed, time, **data)
    return result


def escrow_in(status: EscrowStatus | None) -> Escrow | None:
    return (
        None
        if status is None
        else Escrow("e-1", "d", "r", Decimal("25.00"), None, status, T0, T0 + rules.HOLD)
    )


def match_in(status: MatchStatus | None) -> Match | None:
    return None if status is None else Match("m-1", "d", "r", status, T0, T0 + rules.MATCH_TTL, T0)


def cycle_in(status: CycleStatus | None) -> Cycle | None:
    return None if status is None else Cycle("c-1", "u", Decimal("10.00"), TODAY, status, T0)


# Written out by hand rather than read from the rules module, so the tables check it.
ESCROW_LEGAL = {
    (None, "donation.confirmed"): EscrowStatus.HELD,
    (EscrowStatus.HELD, "escrow.released"): EscrowStatus.RELEASED,
}
MATCH_LEGAL = {
    (None, "match.created"): MatchStatus.PENDING,
    (MatchStatus.PENDING, "match.accepted"): MatchStatus.ACCEPTED,
    (MatchStatus.PENDING, "match.expired"): MatchStatus.EXPIRED,
}
CYCLE_LEGAL = {
    (None, "cycle.created"): CycleStatus.PENDING,
    (CycleStatus.PENDING, "cycle.obligated"): CycleStatus.OBLIGATED,
    (CycleStatus.PENDING, "cycle.fulfilled"): CycleStatus.FULFILLED,
    (CycleStatus.OBLIGATED, "cycle.fulfilled"): CycleStatus.FULFILLED,
    (CycleStatus.OBLIGATED, "cycle.defaulted"): CycleStatus.DEFAULTED,
}


def test_tables_match_the_rules_module() -> None:
    assert rules.ESCROW_ALLOWED == ESCROW_LEGAL
    assert rules.MATCH_ALLOWED == MATCH_LEGAL
    assert rules.CYCLE_ALLOWED == CYCLE_LEGAL


def escrow_step(state: EscrowStatus | None, type_: str) -> Escrow:
    before = escrow_in(state)
    if type_ == "donation.confirmed":
        return rules.confirm(before, donation(T0 + H))
    assert before is not None
    return rules.release(before, T0 + 50 * H)


def match_step(state: MatchStatus | None, type_: str) -> Match:
    before = match_in(state)
    if type_ == "match.created":
        return rules.apply_match(
            before, ev(MatchCreated, T0, match_id="m-1", donor_id="d", recipient_id="r")
        )
    if type_ == "match.accepted":
        return rules.apply_match(before, ev(MatchAccepted, T0 + H, match_id="m-1"))
    assert before is not None
    return rules.expire_match(before, T0 + 25 * H)


def cycle_step(state: CycleStatus | None, type_: str) -> Cycle:
    before = cycle_in(state)
    if type_ == "cycle.created":
        created = ev(
            CycleCreated, T0, cycle_id="c-1", user_id="u", amount="10.00", due_date="2026-12-01"
        )
        return rules.apply_cycle(before, created)
    if type_ == "cycle.fulfilled":
        return rules.apply_cycle(before, ev(CycleFulfilled, T0 + H, cycle_id="c-1"))
    assert before is not None
    return rules.obligate(before, T0) if type_ == "cycle.obligated" else rules.default(before, T0)


#: Events only a job applies, to an aggregate that exists (never from None).
BY_JOBS = {"escrow.released", "match.expired", "cycle.obligated", "cycle.defaulted"}
CASES = [
    (step, legal, state, type_)
    for step, legal, states, types in [
        (escrow_step, ESCROW_LEGAL, EscrowStatus, ("donation.confirmed", "escrow.released")),
        (
            match_step,
            MATCH_LEGAL,
            MatchStatus,
            ("match.created", "match.accepted", "match.expired"),
        ),
        (
            cycle_step,
            CYCLE_LEGAL,
            CycleStatus,
            ("cycle.created", "cycle.obligated", "cycle.fulfilled", "cycle.defaulted"),
        ),
    ]
    for state in [None, *states]
    for type_ in types
    if not (state is None and type_ in BY_JOBS)
]


@pytest.mark.parametrize(
    ("step", "legal", "state", "type_"), CASES, ids=[f"{c[2]}-{c[3]}" for c in CASES]
)
def test_every_state_and_event_pair(
    step: Any, legal: dict[Any, Any], state: Any, type_: str
) -> None:
    expected = legal.get((state, type_))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            step(state, type_)
        assert caught.value.state == state and caught.value.event_type == type_
        return
    assert step(state, type_).status is expected


def test_a_donation_is_held_48_hours_from_its_event_time() -> None:
    escrow = rules.confirm(None, donation(T0, cycle_id="c-9"))
    assert (escrow.status, escrow.release_at, escrow.cycle_id) == (
        EscrowStatus.HELD,
        T0 + 48 * H,
        "c-9",
    )


@pytest.mark.parametrize(
    ("elapsed", "due"),
    [(47 * H, False), (48 * H - timedelta(microseconds=1), False), (48 * H, True), (100 * H, True)],
)
def test_release_boundary(elapsed: timedelta, due: bool) -> None:
    escrow = rules.confirm(None, donation(T0))
    assert rules.is_due(escrow, T0 + elapsed) is due
    assert rules.is_due(rules.release(escrow, T0 + 49 * H), T0 + elapsed) is False


@pytest.mark.parametrize(
    ("accepted_after", "ok"),
    [(H, True), (24 * H - timedelta(microseconds=1), True), (24 * H, False), (30 * H, False)],
)
def test_a_match_may_be_accepted_only_before_it_expires_by_event_time(
    accepted_after: timedelta, ok: bool
) -> None:
    match = rules.apply_match(
        None, ev(MatchCreated, T0, match_id="m-1", donor_id="d", recipient_id="r")
    )
    accept = ev(MatchAccepted, T0 + accepted_after, match_id="m-1")
    if ok:
        assert rules.apply_match(match, accept).status is MatchStatus.ACCEPTED
    else:
        with pytest.raises(InvalidTransition, match="pending"):
            rules.apply_match(match, accept)
    assert rules.is_expired(match, T0 + accepted_after) is not ok


def test_a_boost_is_granted_once_and_active_in_its_window() -> None:
    grant = ev(
        BoostGranted, T0, boost_id="b-1", user_id="u", multiplier="1.50", expires_at=T0 + 2 * D
    )
    boost = lb.grant(None, grant)
    with pytest.raises(InvalidTransition):
        lb.grant(boost, grant)
    assert [lb.boost_active(boost, T0 + d) for d in (-H, 0 * H, D, 2 * D)] == [
        False,
        True,
        True,
        False,
    ]
    assert lb.should_expire(boost, T0 + 2 * D) and not lb.should_expire(boost, T0 + D)


@pytest.mark.parametrize(
    ("status", "due_in", "reminded", "expected"),
    [
        (CycleStatus.OBLIGATED, 7, False, True),
        (CycleStatus.OBLIGATED, 7, True, False),
        (CycleStatus.OBLIGATED, 6, False, False),
        (CycleStatus.OBLIGATED, 8, False, False),
        (CycleStatus.PENDING, 7, False, False),
        (CycleStatus.FULFILLED, 7, False, False),
    ],
)
def test_reminder_exactly_seven_days_before_and_only_once(
    status: CycleStatus, due_in: int, reminded: bool, expected: bool
) -> None:
    cycle = Cycle(
        "c", "u", Decimal(1), TODAY + due_in * D, status, T0, reminded_at=T0 if reminded else None
    )
    assert rules.needs_reminder(cycle, TODAY) is expected
    if expected:
        assert not rules.needs_reminder(rules.remind(cycle, T0), TODAY)


@pytest.mark.parametrize(
    ("status", "due_in", "overdue"),
    [
        (CycleStatus.OBLIGATED, -1, True),
        (CycleStatus.OBLIGATED, 0, False),
        (CycleStatus.PENDING, -3, False),
        (CycleStatus.FULFILLED, -3, False),
        (CycleStatus.DEFAULTED, -3, False),
    ],
)
def test_overdue(status: CycleStatus, due_in: int, overdue: bool) -> None:
    assert (
        rules.is_overdue(Cycle("c", "u", Decimal(1), TODAY + due_in * D, status, T0), TODAY)
        is overdue
    )


@pytest.mark.parametrize(
    ("trust", "defaults", "after"),
    [
        ("1.00", 1, "0.90"),
        ("1.00", 2, "0.80"),
        ("0.10", 1, "0.00"),
        ("0.05", 1, "0.00"),
        ("0.00", 1, "0.00"),
        ("0.35", 3, "0.05"),
    ],
)
def test_penalty_is_ten_hundredths_per_default_floored_at_zero(
    trust: str, defaults: int, after: str
) -> None:
    assert rules.penalize(Decimal(trust), defaults) == Decimal(after)


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000.00"), places=2)
users = st.sampled_from(["a", "b", "c", "d"])


@given(
    specs=st.lists(st.tuples(users, users, money, st.integers(0, 100)), max_size=30),
    now_h=st.integers(0, 150),
)
def test_release_moves_money_without_creating_or_losing_any(
    specs: list[tuple[str, str, Decimal, int]], now_h: int
) -> None:
    escrows = [
        rules.confirm(
            None, donation(T0 + h * H, escrow_id=f"e{i}", donor_id=d, recipient_id=r, amount=amount)
        )
        for i, (d, r, amount, h) in enumerate(specs)
        if d != r
    ]
    accounts = {u: Account(u) for u in "abcd"}
    for e in escrows:
        accounts[e.recipient_id] = rules.credit(accounts[e.recipient_id], e.amount)
    now = T0 + now_h * H

    after, released = rules.release_due(accounts, escrows, now)

    total = sum((a.receivable + a.fiat for a in accounts.values()), Decimal(0))
    assert sum((a.receivable + a.fiat for a in after.values()), Decimal(0)) == total
    assert {e.id for e in released} == {e.id for e in escrows if rules.is_due(e, now)}
    for u in "abcd":
        moved = sum((e.amount for e in released if e.recipient_id == u), Decimal(0))
        assert after[u].fiat == accounts[u].fiat + moved
        assert after[u].receivable == accounts[u].receivable - moved >= 0
        assert after[u].charity_coins == rules.DONOR_COINS * sum(e.donor_id == u for e in released)


@pytest.mark.parametrize(
    ("completed", "avg", "multiplier", "score"),
    [
        (0, None, "2.00", "0.00"),
        (1, "10.00", "1.00", "30.00"),
        (3, "5.00", "1.00", "55.00"),
        (2, "15.00", "1.50", "52.50"),
        (1, "40.00", "1.00", "10.00"),
        (1, "29.99", "1.25", "12.51"),  # 10.01 × 1.25 = 12.5125, half up
    ],
)
def test_score(completed: int, avg: str | None, multiplier: str, score: str) -> None:
    assert lb.score(completed, Decimal(avg) if avg else None, Decimal(multiplier)) == Decimal(score)


def test_average_days_rounds_half_up_to_cents() -> None:
    assert lb.average_days([]) is None
    assert lb.average_days([D, 2 * D]) == Decimal("1.50")
    assert lb.average_days([timedelta(hours=1)]) == Decimal("0.04")
    assert lb.average_days([timedelta(minutes=7, seconds=12)]) == Decimal("0.01")  # 0.005 days


def standing(user: str, score: str, completed: int = 1, avg: str | None = "10.00") -> lb.Standing:
    return lb.Standing(user, completed, Decimal(avg) if avg else None, Decimal(1), Decimal(score))


def test_ranks_are_dense_with_a_deterministic_tie_break() -> None:
    ranked = lb.rank(
        [
            standing("zed", "30.00"),
            standing("amy", "30.00"),  # full tie with zed: same rank, listed by id
            standing("bob", "30.00", completed=2),  # same score, more cycles: ahead
            standing("cat", "30.00", avg="9.00"),  # same score and cycles, faster: ahead
            standing("dan", "12.00"),
            standing("eve", "0.00", completed=0, avg=None),
        ]
    )
    assert [(s.user_id, s.rank) for s in ranked] == [
        ("bob", 1),
        ("cat", 2),
        ("amy", 3),
        ("zed", 3),
        ("dan", 4),
        ("eve", 5),
    ]


standings = st.lists(
    st.builds(
        standing,
        user=st.text("abcdefgh", min_size=1, max_size=3),
        score=st.sampled_from(["0.00", "10.00", "25.50", "30.00"]),
        completed=st.integers(0, 3),
        avg=st.sampled_from([None, "5.00", "12.00"]),
    ),
    max_size=25,
    unique_by=lambda s: s.user_id,
)


@given(standings, st.randoms())
def test_ranking_is_dense_ordered_and_independent_of_input_order(
    entries: list[lb.Standing], rnd: random.Random
) -> None:
    ranked = lb.rank(entries)
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert lb.rank(shuffled) == ranked
    ranks = [s.rank for s in ranked]
    assert ranks == sorted(ranks)
    assert set(ranks) == set(range(1, len(set(ranks)) + 1))  # dense: no gaps
    for a, b in itertools.pairwise(ranked):
        same = (a.score, a.completed_cycles, a.average_completion_days) == (
            b.score,
            b.completed_cycles,
            b.average_completion_days,
        )
        assert (a.rank == b.rank) is same
        assert a.score >= b.score


def test_standing_counts_cycles_done_by_now_and_the_largest_active_boost() -> None:
    def done(cid: str, took: timedelta, at: datetime) -> Cycle:
        return Cycle(cid, "u", Decimal(1), TODAY, CycleStatus.FULFILLED, at - took, fulfilled_at=at)

    cycles = [done("a", 10 * D, T0 - D), done("b", 20 * D, T0 - H), done("later", D, T0 + H)]
    boosts = [
        Boost("b1", "u", Decimal("1.50"), T0 - D, T0 + D),
        Boost("b2", "u", Decimal("1.20"), T0 - D, T0 + D),
        Boost("b3", "u", Decimal("3.00"), T0 - D, T0),  # expired exactly now
        Boost("b4", "other", Decimal("9.00"), T0 - D, T0 + D),
    ]
    s = lb.standing("u", cycles, boosts, T0)
    assert (s.completed_cycles, s.average_completion_days, s.multiplier, s.score) == (
        2,
        Decimal("15.00"),
        Decimal("1.50"),
        Decimal("52.50"),
    )
