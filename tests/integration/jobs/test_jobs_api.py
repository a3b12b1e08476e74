"""The jobs API: roles, a manual run recorded with its actor, pause, resume, backfill."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.api.app import create_api
from service.app import Runtime
from service.config import Settings
from service.tokens import create_token

pytestmark = pytest.mark.integration

JOB = "claims.release-orphaned"


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(Runtime(settings, engine)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def tokens(engine: AsyncEngine) -> dict[str, dict[str, str]]:
    admin = await create_token(engine, "alice", "admin")
    viewer = await create_token(engine, "victor", "viewer")
    return {
        "admin": {"Authorization": f"Bearer {admin}"},
        "viewer": {"Authorization": f"Bearer {viewer}"},
    }


async def test_manual_run_needs_an_admin_and_records_the_actor(
    client: httpx.AsyncClient, engine: AsyncEngine, tokens: dict[str, dict[str, str]]
) -> None:
    async with engine.begin() as conn:  # a claim under review for 8 days
        await conn.execute(
            sa.text(
                "INSERT INTO claims (id, task_id, member_id, status, reviewer_id, submitted_at, "
                "review_started_at, updated_at) VALUES ('c1', 't1', 'm1', 'under_review', 'r1', "
                "now() - interval '9 days', now() - interval '8 days', now() - interval '8 days')"
            )
        )

    assert (await client.post(f"/api/jobs/{JOB}/run")).status_code == 401
    forbidden = await client.post(f"/api/jobs/{JOB}/run", headers=tokens["viewer"], json={})
    assert forbidden.status_code == 403

    ok = await client.post(f"/api/jobs/{JOB}/run", headers=tokens["admin"], json={})

    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["status"] == "succeeded" and body["affected"] == 1
    assert body["rows"][0]["claim_id"] == "c1"
    async with engine.connect() as conn:
        run = (await conn.execute(sa.text("SELECT * FROM job_runs"))).one()
        meta = (
            await conn.execute(
                sa.text("SELECT actor, metadata FROM event_log WHERE entity_id = 'c1'")
            )
        ).one()
    assert run.id == body["run_id"] and run.trigger == "manual" and run.actor == "token:alice"
    assert run.result["rows"][0]["claim_id"] == "c1"
    assert meta.actor == "token:alice" and meta.metadata["admin_id"] == "token:alice"

    history = await client.get(f"/api/jobs/{JOB}/runs", headers=tokens["viewer"])
    assert history.status_code == 200
    assert [(r["id"], r["actor"], r["status"]) for r in history.json()] == [
        (run.id, "token:alice", "succeeded")
    ]


async def test_bad_requests_name_what_is_wrong(
    client: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
) -> None:
    admin = tokens["admin"]
    unknown = await client.post("/api/jobs/nope/run", headers=admin, json={})
    assert unknown.status_code == 404 and "claims.release-orphaned" in unknown.json()["detail"]
    assert (await client.get("/api/jobs/nope/runs", headers=admin)).status_code == 404

    bad = await client.post(
        f"/api/jobs/{JOB}/run", headers=admin, json={"params": {"threshold_days": 0}}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "params", "threshold_days"]
    typo = await client.post(f"/api/jobs/{JOB}/run", headers=admin, json={"params": {"days": 3}})
    assert typo.status_code == 422 and typo.json()["detail"][0]["loc"][-1] == "days"
    status = await client.get(f"/api/jobs/{JOB}/runs?status=bogus", headers=admin)
    assert status.status_code == 422


async def test_list_pause_and_resume(
    client: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
) -> None:
    assert (await client.get("/api/jobs")).status_code == 401
    listed = await client.get("/api/jobs", headers=tokens["viewer"])
    assert listed.status_code == 200
    jobs = {j["name"]: j for j in listed.json()}
    assert {JOB, "engine.prune-inbox", "engine.prune-outbox", "engine.health-check"} <= set(jobs)
    claims = jobs[JOB]
    assert claims["cron"] == "0 3 * * *" and claims["timezone"] == "UTC"
    next_run = datetime.fromisoformat(claims["next_run"])
    assert next_run > datetime.now(UTC) and (next_run.hour, next_run.minute) == (3, 0)
    assert claims["paused"] is None and claims["last_run"] is None

    assert (
        await client.post(f"/api/jobs/{JOB}/pause", headers=tokens["viewer"])
    ).status_code == 403
    paused = await client.post(
        f"/api/jobs/{JOB}/pause", headers=tokens["admin"], json={"reason": "migration"}
    )
    assert paused.json() == {"job": JOB, "paused": True, "changed": True}
    shown = {j["name"]: j for j in (await client.get("/api/jobs", headers=tokens["viewer"])).json()}
    assert shown[JOB]["paused"]["by"] == "token:alice"
    assert shown[JOB]["paused"]["reason"] == "migration" and shown[JOB]["next_run"] is None

    resumed = await client.post(f"/api/jobs/{JOB}/resume", headers=tokens["admin"])
    assert resumed.json()["changed"] is True
    again = await client.post(f"/api/jobs/{JOB}/resume", headers=tokens["admin"])
    assert again.json()["changed"] is False


async def test_backfill_queues_each_past_slot_once(
    client: httpx.AsyncClient, engine: AsyncEngine, tokens: dict[str, dict[str, str]]
) -> None:
    admin = tokens["admin"]
    span = {"from": "2026-10-01T00:00:00Z", "to": "2026-10-03T23:00:00Z"}
    slots = ["2026-10-01T03:00:00Z", "2026-10-02T03:00:00Z", "2026-10-03T03:00:00Z"]

    assert (
        await client.post(f"/api/jobs/{JOB}/backfill", headers=tokens["viewer"], json=span)
    ).status_code == 403
    preview = await client.post(
        f"/api/jobs/{JOB}/backfill", headers=admin, json={**span, "dry_run": True}
    )
    assert preview.status_code == 200
    assert [s.replace("+00:00", "Z") for s in preview.json()["slots"]] == slots
    assert preview.json()["queued"] == []

    queued = await client.post(
        f"/api/jobs/{JOB}/backfill", headers=admin, json={**span, "params": {"threshold_days": 3}}
    )
    assert queued.status_code == 200 and len(queued.json()["queued"]) == 3
    twice = await client.post(f"/api/jobs/{JOB}/backfill", headers=admin, json=span)
    assert twice.json()["queued"] == []  # each slot of the range once
    async with engine.connect() as conn:
        rows = list(await conn.execute(sa.text("SELECT * FROM job_runs ORDER BY slot")))
    assert [(r.trigger, r.actor, r.status, r.params) for r in rows] == [
        ("backfill", "token:alice", "queued", {"threshold_days": 3})
    ] * 3

    future = datetime.now(UTC) + timedelta(days=2)
    ahead = await client.post(
        f"/api/jobs/{JOB}/backfill", headers=admin, json={**span, "to": future.isoformat()}
    )
    assert ahead.status_code == 422 and ahead.json()["detail"][0]["loc"] == ["body", "to"]
    backwards = await client.post(
        f"/api/jobs/{JOB}/backfill", headers=admin, json={"from": span["to"], "to": span["from"]}
    )
    assert backwards.status_code == 422 and "before" in backwards.json()["detail"][0]["msg"]
    naive = await client.post(
        f"/api/jobs/{JOB}/backfill",
        headers=admin,
        json={"from": "2026-10-01T00:00", "to": span["to"]},
    )
    assert naive.status_code == 422
