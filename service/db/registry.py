"""Where every table lives: the engine's and each installed workflow's."""

from __future__ import annotations

import sqlalchemy as sa


def load_metadata() -> sa.MetaData:
    """Import every workflow's tables so that they register on the shared metadata."""
    from service.db.tables import metadata
    from service.workflows import installed_workflows

    for workflow in installed_workflows():
        workflow.load_tables()
    return metadata
