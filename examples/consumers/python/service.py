"""A Starlette service that trusts identity's access tokens.

`Authenticate` is the dependency: call it at the start of an endpoint to get the caller's
verified `AccessToken`, or an HTTP error: 401 without a valid token, 403 without the role,
401 with `insufficient_user_authentication` (RFC 9470) where a second factor is needed.

    IDENTITY_ISSUER=https://id.example.com PUBLIC_ORIGIN=https://api.example.com \
        uvicorn --factory service:from_environment

PUBLIC_ORIGIN is where clients call this service: DPoP proofs name it, and a proof for
another service (or a Host header a client chose) must not pass here.
"""

from __future__ import annotations

import os

from identity_tokens import AccessToken, Dpop, InvalidToken, KeysUnavailable, TokenVerifier
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Authenticate:
    def __init__(self, verifier: TokenVerifier, public_origin: str) -> None:
        self.verifier = verifier
        self.public_origin = public_origin.rstrip("/")  # e.g. https://api.example.com

    async def __call__(
        self, request: Request, *, role: str | None = None, aal: int = 1
    ) -> AccessToken:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not token:
            raise _unauthorized("a bearer or DPoP token is required")
        dpop = None
        if scheme.lower() == "dpop":
            # The URL the client called, from the configured origin (never the Host header).
            url = f"{self.public_origin}{request.url.path}"
            dpop = Dpop(request.headers.get("DPoP", ""), request.method, url)
        try:
            # PyJWKClient fetches over blocking HTTP: keep it off the event loop.
            access = await run_in_threadpool(self.verifier.verify, token.strip(), dpop)
        except InvalidToken:
            raise _unauthorized("the token is invalid or expired") from None
        except KeysUnavailable:
            raise HTTPException(503, "cannot verify tokens right now") from None
        if access.aal < aal:
            raise HTTPException(
                401,
                "sign in with a second factor",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_user_authentication"'},
            )
        if role is not None and role not in access.roles:
            raise HTTPException(403, f"requires the {role} role")
        return access


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def create_app(verifier: TokenVerifier, public_origin: str) -> Starlette:
    authenticate = Authenticate(verifier, public_origin)

    async def me(request: Request) -> JSONResponse:
        access = await authenticate(request)
        return JSONResponse(
            {"userId": access.user_id, "roles": sorted(access.roles), "aal": access.aal}
        )

    async def report(request: Request) -> JSONResponse:
        # For a decision that matters, ask identity (the `me` query): `roles` is only
        # as fresh as the token.
        access = await authenticate(request, role="admin")
        return JSONResponse({"report": "for admins", "userId": access.user_id})

    async def payouts(request: Request) -> JSONResponse:
        # Money moves only for a caller who signed in with a second factor.
        access = await authenticate(request, aal=2)
        return JSONResponse({"payouts": [], "userId": access.user_id, "aal": access.aal})

    return Starlette(
        routes=[Route("/me", me), Route("/report", report), Route("/payouts", payouts)]
    )


def from_environment() -> Starlette:
    return create_app(
        TokenVerifier(
            issuer=os.environ["IDENTITY_ISSUER"],
            audience=os.environ.get("IDENTITY_AUDIENCE", "identity"),
            jwks_url=os.environ.get("IDENTITY_JWKS_URL"),
        ),
        os.environ["PUBLIC_ORIGIN"],
    )
