"""Notifier tables: one row per delivered notification id."""

from __future__ import annotations

import sqlalchemy as sa

from service.db.tables import NOW, metadata

#: Checked before sending and written after a successful delivery, in one transaction.
deliveries = sa.Table(
    "notifier_deliveries",
    metadata,
    sa.Column("notification_id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("sink", sa.Text, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("ix_notifier_deliveries_delivered_at", "delivered_at"),
)
