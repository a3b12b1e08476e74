"""The dashboard's session: an API token in an HttpOnly, SameSite=Strict cookie, plus CSRF.

The cookie holds the token the operator typed in; no server-side session state, so
any API replica serves any page. Every form that changes something carries a CSRF
token derived from the session token with HMAC: another site can neither read the
cookie nor compute the CSRF token, and SameSite=Strict keeps the cookie off its
requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, Response, status

from service.tokens import Principal, authenticate

COOKIE = "jobstream_session"
MAX_AGE_S = 8 * 3600


def csrf_for(token: str) -> str:
    return hmac.new(b"jobstream-dashboard-csrf", token.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str

    @property
    def can_act(self) -> bool:
        return self.principal.role == "admin"


def to_login(request: Request) -> HTTPException:
    return HTTPException(
        status.HTTP_303_SEE_OTHER, headers={"Location": str(request.url_for("login_page"))}
    )


async def session(request: Request) -> Session:
    """Dependency for pages: the logged-in operator, or a redirect to the login page."""
    token = request.cookies.get(COOKIE)
    principal = await authenticate(request.app.state.runtime.engine, token) if token else None
    if principal is None or token is None:
        raise to_login(request)
    return Session(principal, csrf_for(token))


async def acting(request: Request) -> Session:
    """Dependency for forms that change something: admin role and a valid CSRF token."""
    current = await session(request)
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, current.csrf):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page"
        )
    if not current.can_act:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this action needs the admin role")
    return current


def start(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/dashboard",
    )


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/dashboard")


__all__ = ["COOKIE", "Session", "acting", "authenticate", "csrf_for", "end", "session", "start"]
