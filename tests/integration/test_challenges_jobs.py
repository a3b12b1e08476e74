"""Challenges jobs on real PostgreSQL: auto-complete, stats view, streak reminders across
DST changes, and notification cleanup in bounded batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from cronsim import CronSim
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.challenges import (
    ChallengeCreated,
    ChallengeMemberJoined,
    ChallengeProgressRecorded,
    NotificationCreated,
    UserUpserted,
)
from service.app import Runtime
from service.config import Settings
from service.engine.workflow import Scope
from service.workflows.challenges import handlers, jobs, rules
from service.workflows.challenges.workflow import WORKFLOW
from tests.helpers import event
from tests.integration.workflow_helpers import (
    apply,
    assert_one_to_one,
    context,
    counts,
    logged,
    notifications,
    rows,
    run,
    scalar,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
OUT = "challenges.out"


def created(cid: str, starts: datetime, ends: datetime) -> Any:
    return event(
        ChallengeCreated,
        starts - D,
        challenge_id=cid,
        title=f"Challenge {cid}",
        starts_at=starts,
        ends_at=ends,
    )


def joined(cid: str, user: str, at: datetime) -> Any:
    return event(ChallengeMemberJoined, at, challenge_id=cid, user_id=user)


def progress(cid: str, user: str, rate: str, at: datetime) -> Any:
    return event(
        ChallengeProgressRecorded, at, challenge_id=cid, user_id=user, completion_rate=rate
    )


def challenge_with(cid: str, ends: datetime, rates: dict[str, str]) -> list[Any]:
    start = ends - 30 * D
    events = [created(cid, start, ends)]
    for user, rate in rates.items():
        events += [joined(cid, user, start), progress(cid, user, rate, ends - 2 * H)]
    return events


async def test_auto_complete_closes_ended_challenges_and_notifies_their_members(
    settings: Settings, engine: AsyncEngine
) -> None:
    cases = {
        "avg-exactly-80": (NOW - H, {"u1": "0.9000", "u2": "0.8000", "u3": "0.7000"}),
        "just-below": (NOW - D, {"u1": "0.8000", "u4": "0.7999"}),
        "nobody-joined": (NOW - H, {}),
        "ends-now": (NOW, {"u5": "1.0000"}),
        "running": (NOW + H, {"u1": "0.1000", "u6": "0.2000"}),
        "closed-earlier": (NOW - 10 * D, {"u7": "1.0000"}),
    }
    await apply(
        engine,
        handlers.handle,
        [e for cid, (ends, r) in cases.items() for e in challenge_with(cid, ends, r)],
    )
    earlier = await run(engine, jobs.auto_complete, context(settings, NOW - 9 * D))
    assert [r["id"] for r in earlier.rows] == ["closed-earlier"]
    before = await counts(engine)

    result = await Runtime(settings, engine).run_job(
        "challenges.auto-complete", now=NOW, trigger="scheduled"
    )

    assert result.result is not None
    closed = {r["id"]: (r["status"], r["average_completion_rate"]) for r in result.result.rows}
    assert closed == {
        "avg-exactly-80": ("completed", "0.8000"),
        "just-below": ("failed", "0.8000"),  # 0.79995 rounds to 0.8000 for display only
        "nobody-joined": ("failed", "0.0000"),
        "ends-now": ("completed", "1.0000"),
    }
    for cid, (status, _) in closed.items():
        rates = [Decimal(r) for r in cases[cid][1].values()]
        assert rules.outcome(rates) == status
    statuses = {r.id: r.status for r in await rows(engine, "SELECT id, status FROM challenges")}
    assert statuses["running"] == "active" and statuses["closed-earlier"] == "completed"

    await assert_one_to_one(
        engine,
        "challenge.completed",
        ["avg-exactly-80", "closed-earlier", "ends-now"],
        settings.topic(OUT),
    )
    await assert_one_to_one(
        engine, "challenge.failed", ["just-below", "nobody-joined"], settings.topic(OUT)
    )
    sent = await notifications(engine, "challenge.completed") + await notifications(
        engine, "challenge.failed"
    )
    by_member = sorted((n["data"]["data"]["challenge_id"], n["data"]["recipient"]) for n in sent)
    assert by_member == [
        ("avg-exactly-80", "u1"),
        ("avg-exactly-80", "u2"),
        ("avg-exactly-80", "u3"),
        ("closed-earlier", "u7"),  # from the earlier slot, not again
        ("ends-now", "u5"),
        ("just-below", "u1"),  # u1 is in two closed challenges: one each
        ("just-below", "u4"),
    ]
    log_now, out_now = await counts(engine)
    assert (log_now - before[0], out_now - before[1]) == (4, 4 + 6)

    again = await run(engine, jobs.auto_complete, context(settings, NOW))
    assert again.affected == 0 and await counts(engine) == (log_now, out_now)


async def stats(engine: AsyncEngine) -> dict[str, tuple[Any, ...]]:
    found = await rows(engine, "SELECT * FROM challenge_stats")
    return {r.challenge_id: tuple(r)[1:] for r in found}


async def test_stats_view_refreshes_concurrently_and_reports_changed_rows(
    settings: Settings, engine: AsyncEngine
) -> None:
    ends = NOW + 10 * D
    await apply(
        engine,
        handlers.handle,
        challenge_with("a", ends, {"u1": "1.0000", "u2": "0.5000", "u3": "0.2500"})
        + challenge_with("b", ends, {}),
    )
    preview = await Runtime(settings, engine).run_job(
        "challenges.refresh-stats", now=NOW, dry_run=True
    )
    assert preview.result is not None and [r["challenge_id"] for r in preview.result.rows] == [
        "a",
        "b",
    ]
    assert await stats(engine) == {}  # a dry run does not refresh

    # A reader holds the view open: a plain REFRESH would wait for it, CONCURRENTLY does not.
    async with engine.connect() as reader:
        await reader.begin()
        await reader.execute(sa.text("SELECT * FROM challenge_stats"))
        first = await asyncio.wait_for(run(engine, jobs.refresh_stats, context(settings, NOW)), 20)
        await reader.rollback()

    assert [r["challenge_id"] for r in first.rows] == ["a", "b"]
    assert await stats(engine) == {
        "a": ("active", 3, 1, Decimal("0.5833"), Decimal("0.2500"), Decimal("1.0000")),
        "b": ("active", 0, 0, Decimal("0.0000"), Decimal("0.0000"), Decimal("0.0000")),
    }
    await assert_one_to_one(engine, "challenge.stats_updated", ["a", "b"], settings.topic(OUT))

    before = await counts(engine)
    again = await run(engine, jobs.refresh_stats, context(settings, NOW))
    assert again.affected == 0 and await counts(engine) == before

    await apply(engine, handlers.handle, [progress("a", "u3", "0.6000", ends - H)])
    changed = await run(engine, jobs.refresh_stats, context(settings, NOW + H))
    assert changed.rows == [
        {
            "challenge_id": "a",
            "status": "active",
            "members": 3,
            "members_finished": 1,
            "average_completion_rate": "0.7000",
            "min_completion_rate": "0.5000",
            "max_completion_rate": "1.0000",
        }
    ]
    assert len(await logged(engine, "challenge.stats_updated")) == 3


def user(uid: str, tz: str) -> Any:
    return event(UserUpserted, datetime(2026, 1, 1, tzinfo=UTC), user_id=uid, name=uid, timezone=tz)


# (timezone, the day before the change, the change day, progress just before local
# midnight of the change day, progress just after it): 08:00 local is a different UTC
# instant on the two days, and local midnight has the pre-change offset.
DST_CASES = [
    pytest.param(
        "Europe/Berlin",
        datetime(2026, 3, 28, 7, tzinfo=UTC),
        datetime(2026, 3, 29, 6, tzinfo=UTC),
        datetime(2026, 3, 28, 22, 30, tzinfo=UTC),  # 23:30 CET on the 28th
        datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # 00:30 CET on the 29th
        id="berlin-spring-forward",
    ),
    pytest.param(
        "America/New_York",
        datetime(2026, 10, 31, 12, tzinfo=UTC),
        datetime(2026, 11, 1, 13, tzinfo=UTC),
        datetime(2026, 11, 1, 3, 30, tzinfo=UTC),  # 23:30 EDT on the 31st
        datetime(2026, 11, 1, 4, 30, tzinfo=UTC),  # 00:30 EDT on the 1st
        id="new-york-fall-back",
    ),
]


@pytest.mark.parametrize(("tz", "day_before", "change_day", "late", "early"), DST_CASES)
async def test_streak_reminders_at_local_eight_across_a_dst_change(
    settings: Settings,
    engine: AsyncEngine,
    tz: str,
    day_before: datetime,
    change_day: datetime,
    late: datetime,
    early: datetime,
) -> None:
    zone = ZoneInfo(tz)
    slots = CronSim(
        "0 8 * * *", datetime.combine(day_before.astimezone(zone).date(), datetime.min.time(), zone)
    )
    assert [next(slots).astimezone(UTC) for _ in range(2)] == [day_before, change_day]

    other = "Asia/Tokyo"
    start = day_before - 20 * D
    local = ["none", "late", "early", "yesterday", "idle"]
    await apply(
        engine,
        handlers.handle,
        [user(u, tz) for u in local]
        + [user("tokyo", other)]
        + [created("run", start, change_day + 20 * D), created("over", start - 10 * D, start)]
        + [joined("run", u, start) for u in ["none", "late", "early", "yesterday", "tokyo"]]
        + [
            joined("over", "idle", start - 10 * D),
            progress("run", "yesterday", "0.1000", day_before - D),
        ],
    )
    async with engine.connect() as conn:
        scopes = await jobs.timezone_scopes(conn)
    assert scopes == sorted([Scope(tz, tz), Scope(other, other)], key=lambda s: s.id)

    first = await run(
        engine, jobs.streak_reminders, context(settings, day_before, scope=tz, timezone=tz)
    )
    assert [r["user_id"] for r in first.rows] == ["early", "late", "none", "yesterday"]
    assert {r["local_date"] for r in first.rows} == {day_before.astimezone(zone).date().isoformat()}

    await apply(
        engine,
        handlers.handle,
        [progress("run", "late", "0.2000", late), progress("run", "early", "0.2000", early)],
    )
    second = await run(
        engine, jobs.streak_reminders, context(settings, change_day, scope=tz, timezone=tz)
    )
    assert [r["user_id"] for r in second.rows] == [
        "late",
        "none",
        "yesterday",
    ]  # "early" did progress today
    reminded_on = {
        r.id: r.streak_reminded_on for r in await rows(engine, "SELECT * FROM challenge_users")
    }
    assert reminded_on["none"] == change_day.astimezone(zone).date()
    assert reminded_on["tokyo"] is None and reminded_on["idle"] is None

    # The SQL agrees with the pure rule for every local user at the change-day slot.
    members = {
        r.user_id: r
        for r in await rows(engine, "SELECT * FROM challenge_members WHERE challenge_id = 'run'")
    }
    run_challenge = rules.Challenge(
        "run", "t", rules.ChallengeStatus.ACTIVE, start, change_day + 20 * D, start
    )
    for uid in ["late", "none", "yesterday", "early"]:
        m = members[uid]
        membership = (
            run_challenge,
            rules.Member("run", uid, start, m.completion_rate, m.progress_at),
        )
        due = rules.needs_streak_reminder(
            tz, day_before.astimezone(zone).date(), [membership], change_day
        )
        assert due is (uid in {"late", "none", "yesterday"})

    assert [r.entity_id for r in await logged(engine, "challenge.streak_reminder_sent")] == sorted(
        ["early", "late", "none", "yesterday", "late", "none", "yesterday"]
    )
    sent = await notifications(engine, "challenge.streak_reminder")
    assert len(sent) == 7 and {n["data"]["data"]["timezone"] for n in sent} == {tz}

    before = await counts(engine)
    again = await run(
        engine, jobs.streak_reminders, context(settings, change_day, scope=tz, timezone=tz)
    )
    assert again.affected == 0 and await counts(engine) == before


async def test_streak_reminders_without_a_scope_use_each_users_own_day(
    settings: Settings, engine: AsyncEngine
) -> None:
    start = NOW - 5 * D
    await apply(
        engine,
        handlers.handle,
        [
            user("ber", "Europe/Berlin"),
            user("la", "America/Los_Angeles"),
            created("run", start, NOW + 5 * D),
        ]
        + [joined("run", u, start) for u in ("ber", "la")],
    )
    # 2026-11-22 00:00 UTC: already the 22nd in Berlin, still the 21st in Los Angeles.
    result = await run(engine, jobs.streak_reminders, context(settings, NOW, scope=None))
    assert {r["user_id"]: r["local_date"] for r in result.rows} == {
        "ber": "2026-11-22",
        "la": "2026-11-21",
    }


def note(nid: str, at: datetime) -> Any:
    return event(NotificationCreated, at, notification_id=nid, user_id="u1", title="Hello")


async def test_cleanup_deletes_only_old_notifications_in_bounded_batches(
    settings: Settings, engine: AsyncEngine
) -> None:
    cutoff = NOW - 30 * D
    old = [note(f"old-{i:02}", cutoff - timedelta(hours=i + 1)) for i in range(7)]
    edge = [note("edge-older", cutoff - timedelta(microseconds=1)), note("edge-exact", cutoff)]
    young = [note("young", NOW - 29 * D), note("today", NOW - H), note("future", NOW + H)]
    await apply(engine, handlers.handle, old + edge + young)
    rt = Runtime(settings, engine)

    preview = await rt.run_job(
        "challenges.cleanup-notifications", now=NOW, dry_run=True, params={"batch_size": 3}
    )
    assert preview.result is not None and preview.result.affected == 8
    assert await scalar(engine, "SELECT count(*) FROM user_notifications") == 12

    outcome = await rt.run_job(
        "challenges.cleanup-notifications", now=NOW, params={"batch_size": 3}
    )

    assert outcome.status == "succeeded" and outcome.result is not None
    expected = sorted([f"old-{i:02}" for i in range(7)] + ["edge-older"])
    assert outcome.result.affected == 8
    assert sorted(r["id"] for r in outcome.result.rows) == expected
    left = [r.id for r in await rows(engine, "SELECT id FROM user_notifications ORDER BY id")]
    assert left == ["edge-exact", "future", "today", "young"]
    assert all(
        rules.is_purgeable(e.time, NOW) == (e.data.notification_id in expected)
        for e in old + edge + young
    )
    await assert_one_to_one(engine, "notification.purged", expected, settings.topic(OUT))
    # Each batch committed on its own: one transaction timestamp per batch of <= 3.
    batches = await scalar(
        engine,
        "SELECT count(DISTINCT recorded_at) FROM event_log WHERE event_type = 'notification.purged'",
    )
    assert batches == 3
    assert (
        await scalar(
            engine, "SELECT affected FROM job_runs WHERE job = 'challenges.cleanup-notifications'"
        )
        == 8
    )

    before = await counts(engine)
    again = await run(
        engine, jobs.cleanup_notifications, context(settings, NOW, jobs.CleanupParams(batch_size=3))
    )
    assert again.affected == 0 and await counts(engine) == before


def test_jobs_are_registered_with_their_schedules() -> None:
    schedule = {j.name: (j.cron, j.timezone, j.scopes is not None) for j in WORKFLOW.jobs}
    assert schedule == {
        "challenges.auto-complete": ("0 0 * * *", "UTC", False),
        "challenges.refresh-stats": ("0 * * * *", "UTC", False),
        "challenges.streak-reminders": ("0 8 * * *", "UTC", True),
        "challenges.cleanup-notifications": ("30 3 * * *", "UTC", False),
    }
