"""Cookie mode: the refresh token in an HttpOnly cookie that JavaScript never sees.

`__Host-` prefix, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain; plain-HTTP
development drops Secure and the prefix. A request that relies on the cookie must carry
the custom header CSRF_HEADER: browsers cannot send it cross-site without a CORS
preflight, and plain HTML forms cannot send it at all.
"""

from __future__ import annotations

from datetime import datetime

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response

from identity.config import Settings
from identity.http import is_json

CSRF_HEADER = "X-Requested-With"


def cookie_name(settings: Settings) -> str:
    return "__Host-identity-refresh" if settings.secure_cookies else "identity-refresh"


def set_refresh_cookie(
    response: Response, settings: Settings, token: str, ends: datetime, now: datetime
) -> None:
    response.set_cookie(
        cookie_name(settings),
        token,
        max_age=max(0, int((ends - now).total_seconds())),  # rotation never extends it
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def refresh_token_from(request: Request, settings: Settings, given: str | None) -> str | None:
    """The token in the input; else, in cookie mode, the cookie (after the CSRF check)."""
    if given is not None or not settings.refresh_cookie:
        return given
    cookie = request.cookies.get(cookie_name(settings))
    if cookie is None:
        return None
    if not request.headers.get(CSRF_HEADER) or not is_json(request):
        raise GraphQLError(
            f"Requests that use the refresh cookie must be JSON and carry the {CSRF_HEADER} "
            "header.",
            extensions={"code": "CSRF_CHECK_FAILED"},
        )
    return cookie
