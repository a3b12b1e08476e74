"""Bearer-token authentication and role checks for the admin API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.tokens import Principal, Role, authenticate

bearer = HTTPBearer(auto_error=False, description="API token from `jobstream tokens create`")

RANK = {"viewer": 0, "admin": 1}


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: 401 without a valid token, 403 when the token's role is too low."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        # The API takes the header only: a cookie would let another site's form act for
        # a logged-in operator. The dashboard has its own cookie session with CSRF tokens.
        token = credentials.credentials if credentials else None
        if not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token: send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await authenticate(request.app.state.runtime.engine, token)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if RANK[principal.role] < RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this action needs the {role} role")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
