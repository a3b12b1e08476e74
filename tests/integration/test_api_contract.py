"""Schemathesis against the served OpenAPI document: no 5xx, and every change needs an admin."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.tokens import create_token
from tests.helpers import served_api

pytestmark = pytest.mark.integration

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
async def served(settings: Settings, engine: AsyncEngine) -> AsyncIterator[str]:
    async with served_api(settings, engine) as base:
        yield base


def fuzz(base: str, admin: str, viewer: str, examples: int) -> dict[str, Any]:
    """Every operation with generated input: statuses seen, and what broke the contract."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    mutating: list[str] = []
    for result in schema.get_all_operations():
        _check(result.ok(), base, admin, viewer, examples, failures)
        op = result.ok()
        if op.method.upper() in MUTATING:
            mutating.append(op.label)
    return {"failures": failures, "mutating": mutating}


def _check(op: Any, base: str, admin: str, viewer: str, examples: int, failures: list[str]) -> None:
    @hsettings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=base, headers={"Authorization": f"Bearer {admin}"})
        if response.status_code >= 500:
            failures.append(f"{op.label}: {response.status_code} {response.text[:200]}")
        if op.method.upper() in MUTATING:
            anonymous = case.call(base_url=base, headers={"Authorization": ""})
            if anonymous.status_code != 401:
                failures.append(f"{op.label}: {anonymous.status_code} without a token")
            looker = case.call(base_url=base, headers={"Authorization": f"Bearer {viewer}"})
            if looker.status_code != 403:
                failures.append(f"{op.label}: {looker.status_code} for a viewer")

    check()


async def test_no_request_gets_a_5xx_and_changes_need_an_admin(
    served: str, engine: AsyncEngine
) -> None:
    admin = await create_token(engine, "fuzz-admin", "admin")
    viewer = await create_token(engine, "fuzz-viewer", "viewer")
    examples = int(os.environ.get("JOBSTREAM_FUZZ_EXAMPLES", "25"))
    outcome = await asyncio.to_thread(fuzz, served, admin, viewer, examples)
    assert outcome["failures"] == [], "\n".join(outcome["failures"])
    assert "POST /api/claims/release-orphaned" in outcome["mutating"]
    assert "POST /api/dlq/{dead_letter_id}/replay" in outcome["mutating"]
