"""The escrow jobs' statements: each one set-based, logging and announcing every change.

Each is idempotent by state (a second run for the same slot finds nothing left to
change), reads ``:now`` as the time, and implements a rule of ``rules.py`` or
``leaderboard.py`` that the integration tests compare it with.
"""

from __future__ import annotations

import sqlalchemy as sa

from service.engine.sql import log_and_outbox, log_rows, notification_rows, outbox_rows

NOW = "CAST(:now AS timestamptz)"

# The due escrows are locked first; accounts get one UPDATE per user (recipient and
# donor deltas summed) because a row may be updated only once in a statement.
RELEASE = sa.text(
    f"""
WITH due AS (
    SELECT id FROM escrows
    WHERE status = 'held' AND release_at <= {NOW}
    ORDER BY id
    FOR UPDATE
),
released AS (
    UPDATE escrows e SET status = 'released', released_at = {NOW}
    FROM due WHERE e.id = due.id
    RETURNING e.id, e.donor_id, e.recipient_id, e.amount, e.cycle_id
),
deltas AS (
    SELECT user_id, sum(moved) AS moved, sum(coins) AS coins
    FROM (
        SELECT recipient_id AS user_id, amount AS moved, 0 AS coins FROM released
        UNION ALL
        SELECT donor_id, 0, CAST(:coins AS int) FROM released
    ) d
    GROUP BY user_id
),
moved AS (
    UPDATE escrow_accounts a
    SET receivable = a.receivable - d.moved, fiat = a.fiat + d.moved,
        charity_coins = a.charity_coins + d.coins
    FROM deltas d WHERE a.user_id = d.user_id
    RETURNING a.user_id
),
obligated AS (
    UPDATE escrow_cycles c SET status = 'obligated', obligated_at = {NOW}
    FROM released r
    WHERE c.id = r.cycle_id AND c.user_id = r.recipient_id AND c.status = 'pending'
    RETURNING c.id, c.user_id, c.due_date, r.id AS escrow_id
),
escrow_rows AS MATERIALIZED (
    SELECT r.*, o.id IS NOT NULL AS cycle_obligated, gen_random_uuid() AS event_id,
           jsonb_build_object(
               'escrow_id', r.id, 'donor_id', r.donor_id, 'recipient_id', r.recipient_id,
               'amount', r.amount::text, 'cycle_id', r.cycle_id,
               'charity_coins', CAST(:coins AS int)) AS meta
    FROM released r LEFT JOIN obligated o ON o.escrow_id = r.id
),
cycle_rows AS MATERIALIZED (
    SELECT o.*, gen_random_uuid() AS event_id,
           jsonb_build_object('cycle_id', o.id, 'user_id', o.user_id,
                              'escrow_id', o.escrow_id, 'due_date', o.due_date) AS meta
    FROM obligated o
),
{log_rows("escrow_rows", entity_type="escrow", event_type="escrow.released", entity_id="id")},
{outbox_rows("escrow_rows", event_type="escrow.released", key="id")},
{
        log_rows(
            "cycle_rows",
            entity_type="cycle",
            event_type="cycle.obligated",
            entity_id="id",
            name="cycle_logged",
        )
    },
{outbox_rows("cycle_rows", event_type="cycle.obligated", key="id", name="cycle_queued")}
SELECT id, donor_id, recipient_id, amount, cycle_id, cycle_obligated
FROM escrow_rows ORDER BY id
"""
)

EXPIRE_MATCHES = sa.text(
    f"""
WITH expired AS (
    UPDATE escrow_matches SET status = 'expired', updated_at = {NOW}
    WHERE status = 'pending' AND expires_at <= {NOW}
    RETURNING id, donor_id, recipient_id, expires_at
),
match_rows AS MATERIALIZED (
    SELECT x.*, gen_random_uuid() AS event_id,
           jsonb_build_object('match_id', x.id, 'donor_id', x.donor_id,
                              'recipient_id', x.recipient_id, 'expires_at', x.expires_at) AS meta
    FROM expired x
),
{log_and_outbox("match_rows", entity_type="match", event_type="match.expired", entity_id="id")},
{
        notification_rows(
            "match_rows",
            channel=":channel",
            recipient="donor_id",
            template="'match.expired'",
            data="meta",
        )
    }
SELECT id, donor_id, recipient_id, expires_at FROM match_rows ORDER BY expires_at, id
"""
)

# "Today" is the slot's date in the job's timezone. Reminders and defaults touch
# disjoint cycles (due in 7 days / due before today), so no row is updated twice.
CYCLES = sa.text(
    f"""
WITH today AS (SELECT ({NOW} AT TIME ZONE CAST(:tz AS text))::date AS d),
reminded AS (
    UPDATE escrow_cycles c SET reminded_at = {NOW}
    FROM today t
    WHERE c.status = 'obligated' AND c.reminded_at IS NULL
      AND c.due_date = t.d + CAST(:reminder_days AS int)
    RETURNING c.id, c.user_id, c.amount, c.due_date
),
reminder_rows AS MATERIALIZED (
    SELECT r.*, gen_random_uuid() AS event_id,
           jsonb_build_object('cycle_id', r.id, 'user_id', r.user_id,
                              'amount', r.amount::text, 'due_date', r.due_date) AS meta
    FROM reminded r
),
{
        log_rows(
            "reminder_rows",
            entity_type="cycle",
            event_type="cycle.reminder_sent",
            entity_id="id",
            name="reminder_logged",
        )
    },
{
        notification_rows(
            "reminder_rows",
            channel=":channel",
            recipient="user_id",
            template="'cycle.due_reminder'",
            data="meta",
            name="reminder_notified",
        )
    },
defaulted AS (
    UPDATE escrow_cycles c SET status = 'defaulted', defaulted_at = {NOW}
    FROM today t
    WHERE c.status = 'obligated' AND c.due_date < t.d
    RETURNING c.id, c.user_id, c.amount, c.due_date
),
penalties AS (SELECT user_id, count(*) AS n FROM defaulted GROUP BY user_id),
penalized AS (
    UPDATE escrow_accounts a
    SET trust_score = greatest(0, a.trust_score - CAST(:penalty AS numeric) * p.n)
    FROM penalties p WHERE a.user_id = p.user_id
    RETURNING a.user_id, a.trust_score
),
default_rows AS MATERIALIZED (
    SELECT d.*, p.trust_score, gen_random_uuid() AS event_id,
           jsonb_build_object('cycle_id', d.id, 'user_id', d.user_id,
                              'amount', d.amount::text, 'due_date', d.due_date,
                              'trust_score', p.trust_score::text) AS meta
    FROM defaulted d LEFT JOIN penalized p USING (user_id)
),
{log_and_outbox("default_rows", entity_type="cycle", event_type="cycle.defaulted", entity_id="id")}
SELECT 'reminded' AS action, id, user_id, due_date, amount, NULL::numeric AS trust_score
FROM reminder_rows
UNION ALL
SELECT 'defaulted', id, user_id, due_date, amount, trust_score FROM default_rows
ORDER BY action DESC, id
"""
)

# Scores are computed from the statement's snapshot; boosts are judged by
# granted_at/expires_at against :now, so expiring them in the same statement (which
# that snapshot does not see) changes nothing in the computation.
LEADERBOARD = sa.text(
    f"""
WITH expired AS (
    UPDATE escrow_boosts SET expired_at = {NOW}
    WHERE expired_at IS NULL AND expires_at <= {NOW}
    RETURNING id, user_id, multiplier, expires_at
),
boost_rows AS MATERIALIZED (
    SELECT x.*, gen_random_uuid() AS event_id,
           jsonb_build_object('boost_id', x.id, 'user_id', x.user_id,
                              'multiplier', x.multiplier::text, 'expires_at', x.expires_at) AS meta
    FROM expired x
),
{
        log_rows(
            "boost_rows",
            entity_type="boost",
            event_type="boost.expired",
            entity_id="id",
            name="boost_logged",
        )
    },
{outbox_rows("boost_rows", event_type="boost.expired", key="id", name="boost_queued")},
done AS (
    SELECT user_id, count(*) AS n,
           sum(extract(epoch FROM fulfilled_at - created_at)) AS seconds
    FROM escrow_cycles
    WHERE status = 'fulfilled' AND fulfilled_at <= {NOW}
    GROUP BY user_id
),
boosted AS (
    SELECT user_id, max(multiplier) AS multiplier FROM escrow_boosts
    WHERE granted_at <= {NOW} AND expires_at > {NOW}
    GROUP BY user_id
),
inputs AS (
    SELECT a.user_id, coalesce(d.n, 0)::int AS completed_cycles,
           round(d.seconds / (d.n * 86400), 2) AS average_completion_days,
           coalesce(b.multiplier, 1.00) AS multiplier
    FROM escrow_accounts a
    LEFT JOIN done d USING (user_id) LEFT JOIN boosted b USING (user_id)
),
scored AS (
    SELECT i.*, CASE WHEN i.completed_cycles = 0 THEN 0.00 ELSE round(
               (10 * i.completed_cycles + greatest(0, 30 - i.average_completion_days))
               * i.multiplier, 2) END AS score
    FROM inputs i
),
ranked AS (
    SELECT s.*, dense_rank() OVER (
               ORDER BY score DESC, completed_cycles DESC, average_completion_days ASC NULLS LAST
           )::int AS rank
    FROM scored s
),
changed AS (
    SELECT r.*, l.rank AS previous_rank
    FROM ranked r LEFT JOIN escrow_leaderboard l USING (user_id)
    WHERE (l.rank, l.score, l.completed_cycles, l.average_completion_days, l.multiplier)
          IS DISTINCT FROM
          (r.rank, r.score, r.completed_cycles, r.average_completion_days, r.multiplier)
),
saved AS (
    INSERT INTO escrow_leaderboard AS l (user_id, rank, score, completed_cycles,
                                         average_completion_days, multiplier, updated_at)
    SELECT user_id, rank, score, completed_cycles, average_completion_days, multiplier, {NOW}
    FROM changed
    ON CONFLICT (user_id) DO UPDATE SET
        rank = excluded.rank, score = excluded.score,
        completed_cycles = excluded.completed_cycles,
        average_completion_days = excluded.average_completion_days,
        multiplier = excluded.multiplier, updated_at = excluded.updated_at
),
entry_rows AS MATERIALIZED (
    SELECT c.*, gen_random_uuid() AS event_id,
           jsonb_build_object('user_id', c.user_id, 'rank', c.rank,
                              'previous_rank', c.previous_rank, 'score', c.score::text,
                              'completed_cycles', c.completed_cycles,
                              'average_completion_days', c.average_completion_days::text,
                              'multiplier', c.multiplier::text) AS meta
    FROM changed c
),
{
        log_and_outbox(
            "entry_rows",
            entity_type="leaderboard",
            event_type="leaderboard.entry_updated",
            entity_id="user_id",
        )
    }
SELECT 'boost_expired' AS change, user_id, id AS boost_id, NULL::int AS rank,
       NULL::int AS previous_rank, NULL::numeric AS score
FROM boost_rows
UNION ALL
SELECT 'entry_updated', user_id, NULL, rank, previous_rank, score FROM entry_rows
ORDER BY change, rank, user_id, boost_id
"""
)
