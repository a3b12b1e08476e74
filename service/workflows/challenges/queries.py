"""The challenges jobs' statements: set-based, idempotent by state, every change logged.

Each implements a rule of ``rules.py`` that the integration tests compare it with.
"""

from __future__ import annotations

import sqlalchemy as sa

from service.engine.sql import log_and_outbox, log_rows, notification_rows, outbox_rows

NOW = "CAST(:now AS timestamptz)"

#: Per-challenge statistics; the migration creates the materialized view from this
#: (its own frozen copy), and a dry run diffs it against the view without refreshing.
STATS_QUERY = """
SELECT c.id AS challenge_id, c.status,
       count(m.user_id)::int AS members,
       (count(m.user_id) FILTER (WHERE m.completion_rate >= 1))::int AS members_finished,
       coalesce(round(avg(m.completion_rate), 4), 0)::numeric(5, 4) AS average_completion_rate,
       coalesce(min(m.completion_rate), 0)::numeric(5, 4) AS min_completion_rate,
       coalesce(max(m.completion_rate), 0)::numeric(5, 4) AS max_completion_rate
FROM challenges c
LEFT JOIN challenge_members m ON m.challenge_id = c.id
GROUP BY c.id, c.status
"""

# Taken in its own statement first so that the closing statement, with a fresh
# snapshot, sees every member who joined before the lock was granted.
LOCK_DUE = sa.text(
    f"SELECT id FROM challenges WHERE status = 'active' AND ends_at <= {NOW} ORDER BY id FOR UPDATE"
)

# sum >= threshold × count rather than avg >= threshold: exact, like rules.outcome.
AUTO_COMPLETE = sa.text(
    f"""
WITH rates AS (
    SELECT c.id, count(m.user_id)::int AS members,
           coalesce(sum(m.completion_rate), 0) AS total
    FROM challenges c LEFT JOIN challenge_members m ON m.challenge_id = c.id
    WHERE c.status = 'active' AND c.ends_at <= {NOW}
    GROUP BY c.id
),
closed AS (
    UPDATE challenges c SET
        status = CASE WHEN r.members > 0 AND r.total >= CAST(:threshold AS numeric) * r.members
                      THEN 'completed' ELSE 'failed' END,
        closed_at = {NOW},
        member_count = r.members,
        average_completion_rate = CASE WHEN r.members > 0
                                       THEN round(r.total / r.members, 4) ELSE 0 END
    FROM rates r
    WHERE c.id = r.id AND c.status = 'active'
    RETURNING c.id, c.title, c.status, c.ends_at, c.member_count, c.average_completion_rate
),
closed_rows AS MATERIALIZED (
    SELECT x.*, gen_random_uuid() AS event_id,
           jsonb_build_object('challenge_id', x.id, 'title', x.title, 'ends_at', x.ends_at,
                              'members', x.member_count,
                              'average_completion_rate', x.average_completion_rate::text) AS meta
    FROM closed x
),
completed_rows AS (SELECT * FROM closed_rows WHERE status = 'completed'),
failed_rows AS (SELECT * FROM closed_rows WHERE status = 'failed'),
{
        log_rows(
            "completed_rows",
            entity_type="challenge",
            event_type="challenge.completed",
            entity_id="id",
            name="completed_logged",
        )
    },
{
        outbox_rows(
            "completed_rows", event_type="challenge.completed", key="id", name="completed_queued"
        )
    },
{
        log_rows(
            "failed_rows",
            entity_type="challenge",
            event_type="challenge.failed",
            entity_id="id",
            name="failed_logged",
        )
    },
{outbox_rows("failed_rows", event_type="challenge.failed", key="id", name="failed_queued")},
member_rows AS (
    SELECT r.id AS challenge_id, r.title, r.status, m.user_id
    FROM closed_rows r JOIN challenge_members m ON m.challenge_id = r.id
),
{
        notification_rows(
            "member_rows",
            channel=":channel",
            recipient="user_id",
            template="'challenge.' || status",
            data="jsonb_build_object('challenge_id', challenge_id, 'title', title, "
            "'outcome', status)",
        )
    }
SELECT id, title, status, member_count, average_completion_rate
FROM closed_rows ORDER BY id
"""
)

STATS_LOCK = sa.text("SELECT pg_advisory_xact_lock(:lock_key)")
STATS_SNAPSHOT = (
    sa.text("DROP TABLE IF EXISTS pg_temp.challenge_stats_before"),
    sa.text(
        "CREATE TEMP TABLE challenge_stats_before ON COMMIT DROP AS SELECT * FROM challenge_stats"
    ),
)
STATS_REFRESH = sa.text("REFRESH MATERIALIZED VIEW CONCURRENTLY challenge_stats")

_STAT_COLUMNS = """challenge_id, status, members, members_finished, average_completion_rate,
       min_completion_rate, max_completion_rate"""

STATS_CHANGED = sa.text(
    f"""
WITH stat_rows AS MATERIALIZED (
    SELECT s.*, gen_random_uuid() AS event_id,
           jsonb_build_object('challenge_id', s.challenge_id, 'status', s.status,
                              'members', s.members, 'members_finished', s.members_finished,
                              'average_completion_rate', s.average_completion_rate::text,
                              'min_completion_rate', s.min_completion_rate::text,
                              'max_completion_rate', s.max_completion_rate::text) AS meta
    FROM (SELECT * FROM challenge_stats EXCEPT SELECT * FROM challenge_stats_before) s
),
{
        log_and_outbox(
            "stat_rows",
            entity_type="challenge",
            event_type="challenge.stats_updated",
            entity_id="challenge_id",
        )
    }
SELECT {_STAT_COLUMNS} FROM stat_rows ORDER BY challenge_id
"""
)

STATS_PREVIEW = sa.text(
    f"SELECT {_STAT_COLUMNS} FROM (({STATS_QUERY}) EXCEPT SELECT * FROM challenge_stats) s "
    "ORDER BY challenge_id"
)

# A user is due once per local day (remembered in streak_reminded_on, re-checked in
# the UPDATE so that two concurrent runs cannot both send) when a challenge running
# at :now has no progress from them since their local midnight.
STREAK_REMINDERS = sa.text(
    f"""
WITH targets AS (
    SELECT u.id, u.timezone, ({NOW} AT TIME ZONE u.timezone)::date AS local_date
    FROM challenge_users u
    WHERE CAST(:scope AS text) IS NULL OR u.timezone = CAST(:scope AS text)
),
due AS (
    SELECT t.id, t.local_date, count(*)::int AS challenges
    FROM targets t
    JOIN challenge_members m ON m.user_id = t.id
    JOIN challenges c ON c.id = m.challenge_id
    WHERE c.status = 'active' AND c.starts_at <= {NOW} AND c.ends_at > {NOW}
      AND (m.progress_at IS NULL
           OR m.progress_at < (t.local_date::timestamp AT TIME ZONE t.timezone))
    GROUP BY t.id, t.local_date
),
reminded AS (
    UPDATE challenge_users u SET streak_reminded_on = d.local_date
    FROM due d
    WHERE u.id = d.id
      AND (u.streak_reminded_on IS NULL OR u.streak_reminded_on < d.local_date)
    RETURNING u.id, u.timezone, d.local_date, d.challenges
),
streak_rows AS MATERIALIZED (
    SELECT r.*, gen_random_uuid() AS event_id,
           jsonb_build_object('user_id', r.id, 'timezone', r.timezone,
                              'local_date', r.local_date, 'challenges', r.challenges) AS meta
    FROM reminded r
),
{
        log_rows(
            "streak_rows",
            entity_type="user",
            event_type="challenge.streak_reminder_sent",
            entity_id="id",
        )
    },
{
        notification_rows(
            "streak_rows",
            channel=":channel",
            recipient="id",
            template="'challenge.streak_reminder'",
            data="meta",
        )
    }
SELECT id AS user_id, timezone, local_date, challenges FROM streak_rows ORDER BY id
"""
)

TIMEZONES = sa.text("SELECT DISTINCT timezone FROM challenge_users ORDER BY timezone")

_PURGEABLE = "created_at < CAST(:cutoff AS timestamptz)"

PURGE_BATCH = sa.text(
    f"""
WITH doomed AS (
    SELECT id FROM user_notifications
    WHERE {_PURGEABLE}
    ORDER BY created_at, id
    LIMIT :batch_size
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM user_notifications n USING doomed d WHERE n.id = d.id
    RETURNING n.id, n.user_id, n.created_at
),
purged_rows AS MATERIALIZED (
    SELECT x.*, gen_random_uuid() AS event_id,
           jsonb_build_object('notification_id', x.id, 'user_id', x.user_id,
                              'created_at', x.created_at) AS meta
    FROM deleted x
),
{
        log_and_outbox(
            "purged_rows",
            entity_type="notification",
            event_type="notification.purged",
            entity_id="id",
        )
    }
SELECT id, user_id, created_at FROM purged_rows ORDER BY created_at, id
"""
)

PURGE_PREVIEW = sa.text(
    f"SELECT id, user_id, created_at FROM user_notifications WHERE {_PURGEABLE} "
    "ORDER BY created_at, id"
)
