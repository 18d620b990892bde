"""The two statements on the hot path, on PostgreSQL: prepared, one round trip each.

Every authenticated request loads its principal, and every refresh rotates a session; both
run here on a small asyncpg pool of their own, as single autocommit statements (asyncpg
prepares and caches them per connection). Everything else goes through SQLAlchemy. On
SQLite the same two lookups run through SQLAlchemy (see SessionRepository).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from identity.db.models import Permission, Role, User
from identity.repositories.sessions import PrincipalRows, Rotated

_USER = (
    "u.id, u.email, u.first_name, u.last_name, u.is_active, u.is_verified, "
    "u.created_at, u.updated_at, u.last_login_at, u.app_metadata, u.user_metadata"
)
_ROLE = "r.id AS role_id, r.name, r.description AS role_description, r.is_system, r.requires_mfa"

PRINCIPAL = f"""
SELECT {_USER}, {_ROLE}, p.code, p.description AS permission_description,
  s.aal, s.amr, s.authenticated_at
FROM sessions s
JOIN users u ON u.id = s.user_id
LEFT JOIN user_roles ur ON ur.user_id = u.id
LEFT JOIN roles r ON r.id = ur.role_id
LEFT JOIN role_permissions rp ON rp.role_id = r.id
LEFT JOIN permissions p ON p.code = rp.permission_code
WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
  AND u.is_active
  AND EXISTS (SELECT 1 FROM signing_keys k WHERE k.kid = $4 AND k.revoked_at IS NULL)
"""  # noqa: S608 - constant fragments; every value is a bound parameter

# Rotate a live session of an active user (compare-and-set on the counter), and read the
# user and their roles for the new tokens, in one statement.
ROTATE = f"""
WITH s AS (
  UPDATE sessions
  SET refresh_counter = refresh_counter + 1, refreshed_at = $3, last_used_at = $3
  WHERE id = $1 AND refresh_counter = $2 AND revoked_at IS NULL AND expires_at > $3
    AND ($4::timestamptz IS NULL OR last_used_at > $4)
    AND EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND users.is_active)
    AND (($6::boolean AND dpop_jkt IS NULL) OR dpop_jkt = $5::text)
  RETURNING user_id, expires_at, aal, amr, dpop_jkt
)
SELECT s.expires_at AS session_ends, s.aal, s.amr, s.dpop_jkt, {_USER}, {_ROLE}
FROM s
JOIN users u ON u.id = s.user_id
LEFT JOIN user_roles ur ON ur.user_id = u.id
LEFT JOIN roles r ON r.id = ur.role_id
"""  # noqa: S608 - constant fragments; every value is a bound parameter


# A DPoP proof seen for the first time (the replay record when no Redis keeps it).
RECORD_PROOF = "INSERT INTO dpop_proofs (key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"


class PostgresHotPath:
    def __init__(self, database_url: str, pool_size: int) -> None:
        url = make_url(database_url)
        query = dict(url.query)
        self._connect: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.database,
            # Behind PgBouncer in transaction mode the URL turns prepared statements off.
            "statement_cache_size": int(str(query.get("prepared_statement_cache_size", 100))),
        }
        if "ssl" in query:
            self._connect["ssl"] = str(query["ssl"])
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            min_size=1,
            max_size=self._pool_size,
            max_inactive_connection_lifetime=300,
            **self._connect,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the hot path was not started")
        return self._pool

    async def principal(
        self, *, session_id: uuid.UUID, user_id: uuid.UUID, kid: str, now: datetime
    ) -> PrincipalRows | None:
        rows = await self.pool.fetch(PRINCIPAL, session_id, user_id, now, kid)
        if not rows:
            return None
        roles: dict[uuid.UUID, Role] = {}
        permissions: dict[uuid.UUID, list[Permission]] = {}
        for row in rows:
            role_id = row["role_id"]
            if role_id is None:
                continue
            if role_id not in roles:
                roles[role_id] = _role(row)
                permissions[role_id] = []
            if row["code"] is not None:
                permissions[role_id].append(
                    Permission(code=row["code"], description=row["permission_description"])
                )
        first = rows[0]
        return PrincipalRows(
            user=_user(first),
            aal=first["aal"],
            amr=_json_list(first["amr"]),
            authenticated_at=first["authenticated_at"],
            roles=sorted(roles.values(), key=lambda r: r.name),
            permissions={
                role_id: sorted(granted, key=lambda p: p.code)
                for role_id, granted in permissions.items()
            },
        )

    async def record_proof(self, key: str, expires_at: datetime) -> bool:
        """Record a DPoP proof; False if it was recorded already (a replay)."""
        status: str = await self.pool.execute(RECORD_PROOF, key, expires_at)
        return status.endswith(" 1")

    async def rotate(
        self,
        session_id: uuid.UUID,
        counter: int,
        now: datetime,
        idle_since: datetime | None,
        jkt: str | None = None,
        *,
        unbound: bool = True,
    ) -> tuple[User, list[Role], Rotated] | None:
        """The rotated session's user, their roles and the session; None if not rotated."""
        rows = await self.pool.fetch(ROTATE, session_id, counter, now, idle_since, jkt, unbound)
        if not rows:
            return None
        roles = [_role(row) for row in rows if row["role_id"] is not None]
        first = rows[0]
        rotated = Rotated(
            user_id=first["id"],
            ends=first["session_ends"],
            aal=first["aal"],
            amr=_json_list(first["amr"]),
            jkt=first["dpop_jkt"],
        )
        return _user(first), sorted(roles, key=lambda r: r.name), rotated


def _user(row: Any) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        is_active=row["is_active"],
        is_verified=row["is_verified"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_login_at=row["last_login_at"],
        # asyncpg hands jsonb over as text.
        app_metadata=_document(row["app_metadata"]),
        user_metadata=_document(row["user_metadata"]),
    )


def _document(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        parsed: dict[str, Any] = orjson.loads(value)
        return parsed
    return dict(value)


def _role(row: Any) -> Role:
    return Role(
        id=row["role_id"],
        name=row["name"],
        description=row["role_description"],
        is_system=row["is_system"],
        requires_mfa=row["requires_mfa"],
    )


def _json_list(value: Any) -> list[str]:
    """A JSON column as asyncpg returns it (text, without a codec for json)."""
    loaded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [str(item) for item in loaded]
