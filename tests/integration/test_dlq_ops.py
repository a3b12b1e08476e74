"""Operating dead letters through the API and the CLI, over a real database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.api.app import create_api
from service.app import Runtime
from service.config import Settings
from service.engine import dlq, topics
from service.engine.failures import Incoming
from service.tokens import create_token
from tests.helpers import cli, scalar

pytestmark = pytest.mark.integration

GOOD = b'{"specversion":"1.0","id":"e-1","source":"/t","type":"claim.submitted","time":"2026-11-01T09:00:00Z","data":{}}'


def dead_record(settings: Settings, n: int, error_class: str, payload: bytes = GOOD) -> Incoming:
    errors = json.dumps([{"loc": ["data", "member_id"], "msg": "Field required"}])
    return Incoming(
        topic=topics.dlq(settings, "claims.events"),
        partition=0,
        offset=n,
        key=f"c{n}".encode(),
        value=payload,
        headers={
            "x-forward-id": f"fwd-{n}".encode(),
            "x-original-topic": settings.topic("claims.events").encode(),
            "x-original-partition": b"2",
            "x-original-offset": str(100 + n).encode(),
            "x-original-timestamp": b"1795000000000",
            "x-consumer-group": settings.group_id.encode(),
            "x-attempt": b"6" if error_class == "exhausted" else b"1",
            "x-error-class": error_class.encode(),
            "x-error-type": b"ValidationError" if error_class == "non_retryable" else b"OSError",
            "x-error-message": errors.encode() if error_class == "non_retryable" else b"boom",
            "x-error-trace": b"Traceback (most recent call last): ...",
            "x-first-failed-at": b"2026-11-28T09:00:00+00:00",
            "x-last-failed-at": b"2026-11-28T09:00:31+00:00",
        },
    )


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(Runtime(settings, engine))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_index_is_idempotent_per_forward_id(settings: Settings, engine: AsyncEngine) -> None:
    record = dead_record(settings, 1, "exhausted")
    assert await dlq.index(engine, record) is True
    assert await dlq.index(engine, record) is False  # the relay republished it: one row
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM dead_letters"))).one()
    assert (row.message_id, row.event_type, row.message_key) == ("e-1", "claim.submitted", "c1")
    assert (row.original_partition, row.original_offset, row.attempts) == (2, 101, 6)


async def test_api_lists_shows_replays_and_discards(
    settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    for n, cls in enumerate(["exhausted", "non_retryable", "invalid_transition"]):
        await dlq.index(engine, dead_record(settings, n, cls))
    admin = await create_token(engine, "alice", "admin")
    viewer = await create_token(engine, "victor", "viewer")

    assert (await client.get("/api/dlq")).status_code == 401
    page = (await client.get("/api/dlq", headers=bearer(viewer))).json()
    assert page["count"] == 3
    assert page["pending_by_class"] == {"exhausted": 1, "non_retryable": 1, "invalid_transition": 1}
    only = await client.get("/api/dlq?error_class=non_retryable", headers=bearer(viewer))
    [item] = only.json()["items"]
    shown = (await client.get(f"/api/dlq/{item['id']}", headers=bearer(viewer))).json()
    assert shown["payload"]["type"] == "claim.submitted"
    assert shown["validation_errors"][0]["loc"] == ["data", "member_id"]
    assert (await client.get("/api/dlq/999999", headers=bearer(viewer))).status_code == 404
    assert (
        await client.get("/api/dlq?error_class=bogus", headers=bearer(viewer))
    ).status_code == 422

    exhausted = next(i for i in page["items"] if i["error_class"] == "exhausted")
    url = f"/api/dlq/{exhausted['id']}/replay"
    assert (await client.post(url)).status_code == 401
    assert (await client.post(url, headers=bearer(viewer))).status_code == 403
    ok = await client.post(url, headers=bearer(admin))
    assert ok.status_code == 200
    assert ok.json()["to"] == topics.retry(settings, "claims.events", 1)
    async with engine.connect() as conn:
        out = (await conn.execute(sa.text("SELECT * FROM outbox"))).one()
        row = (
            await conn.execute(
                sa.text("SELECT * FROM dead_letters WHERE id = :i"), {"i": exhausted["id"]}
            )
        ).one()
    assert bytes(out.value) == GOOD and out.key == "c0"
    assert out.headers["x-replay-of"] == str(exhausted["id"])
    assert out.headers["x-replayed-by"] == "token:alice" and out.headers["x-attempt"] == "0"
    assert "x-error-class" not in out.headers  # a replay starts a fresh history
    assert (row.status, row.replay_count, row.last_replayed_by) == ("replayed", 1, "token:alice")

    dry = await client.post(
        "/api/dlq/replay",
        headers=bearer(admin),
        json={"error_class": "non_retryable", "dry_run": True},
    )
    assert dry.json()["count"] == 1 and dry.json()["replayed"] == []
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 1  # the dry run sent nothing
    assert (
        await client.post("/api/dlq/replay", headers=bearer(admin), json={})
    ).status_code == 422  # no ids and no filter: refuse rather than replay everything

    discard = await client.post(
        "/api/dlq/discard", headers=bearer(admin), json={"ids": [item["id"]]}
    )
    assert discard.json() == {"discarded": [item["id"]]}
    again = await client.post(f"/api/dlq/{item['id']}/replay", headers=bearer(admin))
    assert again.status_code == 404  # a discarded dead letter is never replayed
    actors = await scalar(
        engine, "SELECT array_agg(event_type || ' ' || actor ORDER BY id) FROM event_log"
    )
    assert actors == ["dead_letter.replayed token:alice", "dead_letter.discarded token:alice"]


async def test_cli_replays_with_dry_run_and_names_bad_flags(
    settings: Settings, engine: AsyncEngine
) -> None:
    for n in range(3):
        await dlq.index(engine, dead_record(settings, n, "exhausted"))

    code, out = await cli(settings, "dlq", "list", "--error-class", "nope")
    assert code == 2 and "--error-class must be one of" in out
    code, out = await cli(settings, "dlq", "purge", "--older-than", "3 fortnights")
    assert code == 2 and "--older-than" in out and "30d" in out

    code, out = await cli(settings, "dlq", "replay", "--topic", "claims.events", "--dry-run")
    assert code == 0 and "would replay 3" in out
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 0

    code, out = await cli(
        settings, "dlq", "replay", "--topic", "claims.events", "--rate", "50", "--actor", "ops:kim"
    )
    assert code == 0 and "replayed 3 of 3" in out, out
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 3
    assert await scalar(engine, "SELECT count(*) FROM dead_letters WHERE status = 'replayed'") == 3
    assert await scalar(engine, "SELECT count(*) FROM event_log WHERE actor = 'ops:kim'") == 3

    code, out = await cli(settings, "dlq", "show", "1")
    assert code == 0 and "claim.submitted" in out and "x-original-topic" in out


async def test_the_weekly_purge_job_deletes_past_retention_and_logs_the_actor(
    settings: Settings, engine: AsyncEngine
) -> None:
    for n in range(3):
        await dlq.index(engine, dead_record(settings, n, "exhausted"))
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE dead_letters SET created_at = :at WHERE dlq_offset < 2"),
            {"at": now - timedelta(days=31)},
        )
    job = "engine.purge-dead-letters"
    rt = Runtime(settings, engine)
    preview = await rt.run_job(job, now=now, dry_run=True, actor="token:ops")
    assert preview.result is not None and preview.result.affected == 2
    assert await scalar(engine, "SELECT count(*) FROM dead_letters") == 3
    outcome = await rt.run_job(job, now=now, actor="token:ops")
    assert outcome.status == "succeeded" and outcome.result is not None
    assert outcome.result.affected == 2
    assert await scalar(engine, "SELECT count(*) FROM dead_letters") == 1
    assert (
        await scalar(engine, "SELECT actor FROM event_log WHERE event_type = 'dead_letters.purged'")
        == "token:ops"
    )
