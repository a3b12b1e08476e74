"""The admin API over a real database: 401 without a token, 403 for a viewer, 200 for admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.api.app import create_api
from service.app import Runtime
from service.config import Settings
from service.tokens import create_token, digest
from tests.helpers import wait_for
from tests.integration.test_release_orphaned import seed

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(Runtime(settings, engine))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_release_needs_an_admin_token(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await seed(engine, [(f"c{i}", "r1", timedelta(days=8 + i)) for i in range(25)])
    admin = await create_token(engine, "alice", "admin")
    viewer = await create_token(engine, "victor", "viewer")

    assert (await client.post("/api/claims/release-orphaned")).status_code == 401
    assert (await client.get("/api/claims/orphaned")).status_code == 401
    bad = await client.post("/api/claims/release-orphaned", headers=bearer("js_nope"))
    assert bad.status_code == 401
    forbidden = await client.post("/api/claims/release-orphaned", headers=bearer(viewer))
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["detail"]

    page1 = await client.get("/api/claims/orphaned", headers=bearer(viewer))
    assert page1.status_code == 200
    body = page1.json()
    assert body["count"] == 25 and len(body["items"]) == 20
    page2 = (await client.get("/api/claims/orphaned?page=2", headers=bearer(viewer))).json()
    assert [i["claim_id"] for i in page2["items"]] == [f"c{i}" for i in range(4, -1, -1)]

    ok = await client.post("/api/claims/release-orphaned", headers=bearer(admin), json={})
    assert ok.status_code == 200
    assert ok.json()["count"] == 25 and len(ok.json()["released"]) == 25
    async with engine.connect() as conn:
        actor = (await conn.execute(sa.text("SELECT DISTINCT actor FROM job_runs"))).scalar_one()
        left = (
            await conn.execute(sa.text("SELECT count(*) FROM claims WHERE status='under_review'"))
        ).scalar_one()
    assert actor == "token:alice" and left == 0


async def test_tokens_are_stored_hashed_and_bad_input_is_a_4xx(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    admin = await create_token(engine, "alice", "admin")
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT token_hash FROM api_tokens"))).scalar_one()
    assert stored == digest(admin) and admin not in stored

    bad = await client.post(
        "/api/claims/release-orphaned", headers=bearer(admin), json={"threshold_days": 0}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][-1] == "threshold_days"
    unknown = await client.post(
        "/api/claims/release-orphaned", headers=bearer(admin), json={"treshold": 3}
    )
    assert unknown.status_code == 422


async def test_text_with_a_nul_is_a_422_not_a_500(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """PostgreSQL cannot store NUL; filters and parameters holding one are refused."""
    admin = await create_token(engine, "alice", "admin")
    listed = await client.get("/api/dlq", params={"topic": "claims\x00"}, headers=bearer(admin))
    assert listed.status_code == 422
    replay = await client.post(
        "/api/dlq/replay", headers=bearer(admin), json={"topic": "a\x00", "dry_run": True}
    )
    assert replay.status_code == 422
    assert "NUL" in replay.text


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["migrations"] == "ok"


async def test_served_api_accepts_the_bootstrap_admin_token(
    settings: Settings, engine: AsyncEngine
) -> None:
    import asyncio

    from service.app import serve
    from service.embedded import free_port

    port = free_port()
    s = settings.with_overrides(api_port=port, admin_token="js_bootstrap-secret")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Runtime(s, engine), {"api"}, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:

            async def up() -> bool:
                try:
                    return (await c.get("/health/live")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, what="API listening")
            ok = await c.get("/api/claims/orphaned", headers=bearer("js_bootstrap-secret"))
            assert ok.status_code == 200
            assert (
                await c.get("/api/claims/orphaned", headers=bearer("js_other"))
            ).status_code == 401
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
