"""Liveness and readiness: is the database reachable, the broker answering, the schema at head."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.db.migrate import current_revision, head_revision

if TYPE_CHECKING:
    from service.app import Runtime

BROKER_TIMEOUT_S = 3.0
BROKER_CACHE_S = 5.0


class BrokerProbe:
    """Asks the broker for metadata, at most once per ``BROKER_CACHE_S``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._at = 0.0
        self._status = "not checked"

    async def status(self) -> str:
        if not self.rt.settings.kafka_bootstrap_servers:
            return "not configured"
        if time.monotonic() - self._at > BROKER_CACHE_S:
            self._status = await self._probe()
            self._at = time.monotonic()
        return self._status

    async def _probe(self) -> str:
        from aiokafka.admin import AIOKafkaAdminClient

        settings = self.rt.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.require_kafka(),
            request_timeout_ms=int(BROKER_TIMEOUT_S * 1000),
            **settings.kafka_client_options(),
        )
        try:
            async with asyncio.timeout(BROKER_TIMEOUT_S):
                await admin.start()
                await admin.list_topics()
            return "ok"
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}"
        finally:
            await admin.close()


def router(rt: Runtime) -> APIRouter:
    r = APIRouter(tags=["health"])
    broker = BrokerProbe(rt)

    @r.get("/health/live")
    async def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @r.get("/health/ready", response_model=None)
    async def ready() -> Any:
        """Database reachable, broker metadata reachable, migrations at head: else 503."""
        checks: dict[str, str] = {}
        try:
            async with rt.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
                current = await current_revision(conn)
            checks["database"] = "ok"
            checks["migrations"] = (
                "ok" if current == head_revision() else f"at {current}, need {head_revision()}"
            )
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["broker"] = await broker.status()
        ok = all(v in ("ok", "not configured") for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    return r
