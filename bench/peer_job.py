"""The job every system in the peers benchmark runs: idempotent, three statements.

``job(job_id, item_id)``: insert-if-absent of the job id (a second run of the same
job changes nothing), then the item's state update and an audit row, in one
transaction. Celery and Procrastinate run it as written here; jobstream's inbox
is the insert-if-absent, and its handler does the other two set-based per batch.
"""

from __future__ import annotations

SCHEMA = (
    "CREATE TABLE peer_items (id text PRIMARY KEY, state text NOT NULL, "
    "runs integer NOT NULL DEFAULT 0, updated_at timestamptz)",
    "CREATE TABLE peer_runs (job_id text PRIMARY KEY, item_id text NOT NULL)",
    "CREATE TABLE peer_audit (id bigserial PRIMARY KEY, job_id text NOT NULL, "
    "item_id text NOT NULL, action text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
)
SEED = (
    "INSERT INTO peer_items (id, state) SELECT 'i' || g, 'new' FROM generate_series(0, {n} - 1) g"
)
ITEMS = 5_000

# psycopg placeholders
CLAIM = (
    "INSERT INTO peer_runs (job_id, item_id) VALUES (%s, %s) "
    "ON CONFLICT DO NOTHING RETURNING job_id"
)
UPDATE = (
    "UPDATE peer_items SET state = 'processed', runs = runs + 1, updated_at = now() WHERE id = %s"
)
AUDIT = "INSERT INTO peer_audit (job_id, item_id, action) VALUES (%s, %s, 'processed')"


def item_of(n: int) -> str:
    return f"i{n % ITEMS}"


def libpq_url(sqlalchemy_url: str) -> str:
    """The same database as a libpq URL (psycopg), from a ``postgresql+asyncpg://`` one."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)
