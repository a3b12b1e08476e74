"""Database engine factory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.config import Settings


def create_engine(settings: Settings, url: str | None = None, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url or settings.require_database_url(),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )
