"""Accounts with an authenticator app, and mfaTokens for the `verifyMfa` scenario.

A TOTP code is good once per time step and factor, and an mfaToken for one sign-in, so the
scenario needs a fresh (mfaToken, code) pair for every request. Making the tokens through
`login` would cost an argon2 verification each (minutes for a 10 s run); instead the accounts,
their factors and their pending sign-ins are written by COPY, sealed and derived with
identity's own functions and the server secret the benchmark gave the server. The requests
then measure exactly `verifyMfa`: the token check, the code, the session, the tokens.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from bench import seed
from identity.db.models import Challenge, User
from identity.security import totp
from identity.security.derive import ServerSecret
from identity.services.challenges import LIFETIMES, MFA, challenge_token

CHUNK = 20_000


def mfa_email(i: int) -> str:
    return f"mfa{i}@example.com"


@dataclass(frozen=True, slots=True)
class MfaUser:
    id: uuid.UUID
    secret: str
    password_changed_at: datetime


async def seed_mfa_users(
    dsn: str, count: int, password_hash: str, secret_key: str
) -> list[MfaUser]:
    """`count` users with the `user` role and one TOTP factor each."""
    server = ServerSecret(secret_key.encode())
    now = datetime.now(UTC) - timedelta(days=1)
    users = [MfaUser(uuid.uuid4(), totp.new_secret(), now) for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        role = await conn.fetchval("SELECT id FROM roles WHERE name = 'user'")
        async with conn.transaction():
            for start in range(0, count, CHUNK):
                part = list(enumerate(users))[start : start + CHUNK]
                await conn.copy_records_to_table(
                    "users",
                    records=[_user_row(i, u, password_hash, now) for i, u in part],
                    columns=[
                        *("id", "email", "password_hash", "first_name", "last_name"),
                        *("is_active", "is_verified", "created_at", "updated_at"),
                        *("last_login_at", "password_changed_at"),
                    ],
                )
                await conn.copy_records_to_table(
                    "user_roles",
                    records=[(u.id, role, now) for _, u in part],
                    columns=["user_id", "role_id", "created_at"],
                )
                factors = []
                for _, u in part:
                    factor_id = uuid.uuid4()
                    sealed = server.seal(totp.SECRET_PURPOSE, u.secret.encode(), factor_id.bytes)
                    factors.append((factor_id, u.id, "totp", "Bench phone", now, None, sealed))
                await conn.copy_records_to_table(
                    "factors",
                    records=factors,
                    columns=[
                        *("id", "user_id", "kind", "label", "created_at", "last_used_at"),
                        "secret",
                    ],
                )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return users


def _user_row(i: int, u: MfaUser, password_hash: str, now: datetime) -> tuple[object, ...]:
    names = ("Mfa", f"User{i}")
    return (u.id, mfa_email(i), password_hash, *names, True, True, now, now, None, now)


async def pending_sign_ins(dsn: str, users: list[MfaUser], secret_key: str) -> list[str]:
    """An mfaToken for each user, as `login` with the right password would make, and the
    code their app shows now: one `token code` line each."""
    server = ServerSecret(secret_key.encode())
    now = datetime.now(UTC)
    rows, lines = [], []
    for u in users:
        row = Challenge(id=uuid.uuid4(), purpose=MFA, user_id=u.id)
        user = User(id=u.id, password_changed_at=u.password_changed_at)
        token = challenge_token(server, row, user)
        rows.append(
            (
                row.id,
                MFA,
                u.id,
                now,
                now + LIFETIMES[MFA],
                None,
                0,
                orjson.dumps({"amr": ["pwd"]}).decode(),
            )
        )
        lines.append(f"{token} {totp.code_at(u.secret, now)}")
    await seed.copy_challenges(dsn, rows)
    return lines


def step_left() -> float:
    """Seconds left in the current 30-second TOTP step."""
    return totp.PERIOD - time.time() % totp.PERIOD
