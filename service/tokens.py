"""API tokens: random secrets shown once; only their SHA-256 digest is stored.

A token carries 256 bits of randomness, so a fast digest is enough: there is no
password to brute-force, and lookup by digest needs no per-row salt.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.tables import api_tokens

Role = Literal["admin", "viewer"]
PREFIX = "js_"


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(engine: AsyncEngine, name: str, role: Role, token: str | None = None) -> str:
    """Store a new token's digest and return the token (the only time it is seen)."""
    token = token or PREFIX + secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(
            api_tokens.insert().values(name=name, role=role, token_hash=digest(token))
        )
    return token


async def ensure_token(engine: AsyncEngine, name: str, role: Role, token: str) -> None:
    """Idempotently register a token given by configuration (e.g. the bootstrap admin)."""
    async with engine.begin() as conn:
        exists = await conn.execute(
            sa.select(api_tokens.c.id).where(api_tokens.c.token_hash == digest(token))
        )
        if exists.first() is None:
            await conn.execute(
                api_tokens.insert().values(name=name, role=role, token_hash=digest(token))
            )


async def revoke_token(engine: AsyncEngine, name: str) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            api_tokens.update()
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
    return result.rowcount


async def authenticate(engine: AsyncEngine, token: str) -> Principal | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
                    api_tokens.c.token_hash == digest(token), api_tokens.c.revoked_at.is_(None)
                )
            )
        ).first()
    return Principal(row.id, row.name, row.role) if row else None
