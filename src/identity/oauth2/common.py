"""What the endpoints share: forms, client credentials, cookies, JSON answers."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from identity.config import Settings
from identity.services.oauth_common import ClientCredentials, OAuthError
from identity.services.principal import ClientInfo

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def form_of(request: Request) -> dict[str, list[str]]:
    """An urlencoded body as name -> values (repeats kept, so they can be refused)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise OAuthError("invalid_request", f"Send the parameters as {FORM}.")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "The body is not a valid form.") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def single(form: dict[str, list[str]]) -> dict[str, str]:
    """Each parameter once (RFC 6749 §3.1: repeats are an invalid request); empty ones
    count as absent."""
    repeated = sorted(name for name, values in form.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"Repeated parameter: {', '.join(repeated)}.")
    return {name: values[0] for name, values in form.items() if values[0] != ""}


def credentials(request: Request, form: dict[str, str]) -> ClientCredentials | None:
    """client_secret_basic (RFC 6749 §2.3.1: both parts form-urlencoded), or
    client_secret_post, or a public client's client_id alone."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or "client_secret" in form:
            raise OAuthError("invalid_request", "Use one way of client authentication.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client", "Client authentication failed.", 401) from None
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        if form.get("client_id") not in (None, unquote_plus(client_id)):
            raise OAuthError("invalid_request", "client_id does not match the credentials.")
        return ClientCredentials(
            unquote_plus(client_id), unquote_plus(secret), "client_secret_basic"
        )
    if "client_id" not in form:
        return None
    posted = form.get("client_secret")
    method = "client_secret_post" if posted is not None else "none"
    return ClientCredentials(form["client_id"], posted, method)


def error_response(exc: OAuthError) -> Response:
    headers = dict(NO_STORE)
    if exc.status == 401 and exc.error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="identity"'
    elif exc.status in (401, 403):
        scheme = "DPoP" if exc.error == "invalid_dpop_proof" else "Bearer"
        headers["WWW-Authenticate"] = f'{scheme} error="{exc.error}"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, exc.status, headers)


def json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status, NO_STORE)


def peer(request: Request) -> ClientInfo:
    return ClientInfo(
        ip_address=request.scope.get("state", {}).get("client_ip"),
        user_agent=request.headers.get("user-agent"),
    )


def session_cookie(settings: Settings) -> str:
    return "__Host-identity-session" if settings.secure_cookies else "identity-session"


def csrf_cookie(settings: Settings) -> str:
    return "__Host-identity-csrf" if settings.secure_cookies else "identity-csrf"


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",  # top-level navigations from the apps carry it; cross-site POSTs not
    )


def new_csrf() -> str:
    return secrets.token_urlsafe(32)
