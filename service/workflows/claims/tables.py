"""Claims tables: members, tasks and claims under review."""

from __future__ import annotations

import sqlalchemy as sa

from service.db.tables import NOW, metadata

members = sa.Table(
    "members",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

claims = sa.Table(
    "claims",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reviewer_id", sa.Text),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("review_started_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.CheckConstraint(
        "status IN ('submitted', 'under_review', 'approved', 'rejected', 'revision_requested')",
        name="status",
    ),
    sa.CheckConstraint("(reviewer_id IS NOT NULL) = (status = 'under_review')", name="reviewer"),
    sa.Index(
        "ix_claims_under_review_updated",
        "updated_at",
        postgresql_where=sa.text("status = 'under_review'"),
    ),
)
