"""The floor: the work of `{ me { id email roles { name } } }` without GraphQL or an ORM.

A hand-written Starlette endpoint that verifies the access token the way identity does
(algorithm pinned, `typ`, `kid`, issuer, audience, expiry with leeway) against the public
keys in the same `signing_keys` table, then loads the user and role names in one prepared
statement that also checks what identity checks on every request (the session is live, the
user active, the key not revoked). It answers the same JSON a GraphQL server would.

    BENCH_FLOOR_DSN=postgresql://postgres@127.0.0.1:5432/db BENCH_FLOOR_ISSUER=http://… \
        uvicorn bench.floor_app:app --workers 1
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DSN = os.environ.get("BENCH_FLOOR_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ISSUER = os.environ.get("BENCH_FLOOR_ISSUER", "http://127.0.0.1:8000")
AUDIENCE = os.environ.get("BENCH_FLOOR_AUDIENCE", "identity")
POOL_SIZE = int(os.environ.get("BENCH_FLOOR_POOL_SIZE", "20"))  # identity: 10 + 10 overflow
LEEWAY = 30

ME = """
SELECT u.id, u.email, r.name AS role
FROM sessions s
JOIN users u ON u.id = s.user_id
LEFT JOIN user_roles ur ON ur.user_id = u.id
LEFT JOIN roles r ON r.id = ur.role_id
WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
  AND u.is_active
  AND EXISTS (SELECT 1 FROM signing_keys k WHERE k.kid = $3 AND k.revoked_at IS NULL)
ORDER BY r.name
"""

UNAUTHENTICATED = orjson.dumps(
    {"data": {"me": None}, "errors": [{"message": "Unauthenticated.", "path": ["me"]}]}
)

_state: dict[str, Any] = {}


def _claims(authorization: str | None) -> dict[str, Any] | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        header = jwt.get_unverified_header(token)
        found = _state["keys"].get(header.get("kid"))
        if found is None or header.get("typ") != "at+jwt":
            return None
        algorithm, key = found
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "sub", "exp", "iat", "jti", "sid"]},
        )
    except jwt.PyJWTError:
        return None
    claims["kid"] = header["kid"]
    return claims


async def me(request: Request) -> Response:
    orjson.loads(await request.body())  # a GraphQL server reads the document; so does the floor
    claims = _claims(request.headers.get("authorization"))
    if claims is None:
        return Response(UNAUTHENTICATED, media_type="application/json")
    pool: asyncpg.Pool = _state["pool"]
    rows = await pool.fetch(ME, uuid.UUID(claims["sid"]), uuid.UUID(claims["sub"]), claims["kid"])
    if not rows:
        return Response(UNAUTHENTICATED, media_type="application/json")
    user = {
        "id": str(rows[0]["id"]),
        "email": rows[0]["email"],
        "roles": [{"name": row["role"]} for row in rows if row["role"] is not None],
    }
    return Response(orjson.dumps({"data": {"me": user}}), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)
    rows = await pool.fetch(
        "SELECT kid, algorithm, public_jwk FROM signing_keys WHERE revoked_at IS NULL"
    )
    keys = {}
    for row in rows:
        jwk = row["public_jwk"]
        jwk = orjson.loads(jwk) if isinstance(jwk, str) else jwk
        keys[row["kid"]] = (row["algorithm"], jwt.PyJWK(jwk, algorithm=row["algorithm"]).key)
    _state.update(pool=pool, keys=keys)
    try:
        yield
    finally:
        await pool.close()


app = Starlette(routes=[Route("/graphql", me, methods=["POST"])], lifespan=lifespan)
