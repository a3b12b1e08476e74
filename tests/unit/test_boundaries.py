"""Dependencies point one way: contracts and rules load no broker, database or web code."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("faststream", "aiokafka", "sqlalchemy", "fastapi", "asyncpg", "service.engine")

PROBE = """
import json, sys
import schemas
import service.workflows.claims.rules
import service.workflows.escrow.rules
import service.workflows.escrow.leaderboard
import service.workflows.challenges.rules
import service.workflows.litigation.rules
import service.workflows.usage.rules
print(json.dumps(sorted(sys.modules)))
"""


def test_schemas_and_rules_import_no_infrastructure() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(result.stdout)
    leaked = sorted(
        name for name in loaded for root in FORBIDDEN if name == root or name.startswith(f"{root}.")
    )
    assert leaked == []
    assert "service.workflows.claims.rules" in loaded
    assert "service.workflows.escrow.leaderboard" in loaded
    assert "service.workflows.challenges.rules" in loaded
    assert "service.workflows.litigation.rules" in loaded
    assert "service.workflows.usage.rules" in loaded
