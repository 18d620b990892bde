"""Accounts with a passkey, and answered sign-in challenges for the `passkey-login` scenario.

Each `finishPasskeyLogin` needs a challenge of its own (single use), answered by the account's
authenticator. The load generator cannot sign, so the answers are made beforehand by a small
software authenticator here (an EC P-256 key per account, authenticator data and a signature
over the challenge, as a synced passkey makes them: counter 0), and the challenges are written
by COPY with identity's own token derivation. The requests then measure exactly
`finishPasskeyLogin`: the token, the signature, the session, the tokens; no argon2 anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import cbor2
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from identity.db.models import Challenge
from identity.security.derive import ServerSecret
from identity.services.challenges import LIFETIMES, PASSKEY_LOGIN, challenge_token

RP_ID = "localhost"
FLAGS = bytes([0x01 | 0x04 | 0x08 | 0x10])  # user present and verified, backed up
QUERY = (
    "mutation($i: FinishPasskeyLoginInput!) { finishPasskeyLogin(input: $i) "
    "{ __typename ... on AuthPayload { accessToken refreshToken expiresIn } } }"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class PasskeyUser:
    id: uuid.UUID
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey


def origin(port: int) -> str:
    return f"http://{RP_ID}:{port}"


async def seed_passkey_users(dsn: str, count: int, password_hash: str) -> list[PasskeyUser]:
    """`count` users with the `user` role and one passkey each."""
    now = datetime.now(UTC) - timedelta(days=1)
    users = [
        PasskeyUser(uuid.uuid4(), os.urandom(16), ec.generate_private_key(ec.SECP256R1()))
        for _ in range(count)
    ]
    conn = await asyncpg.connect(dsn)
    try:
        role = await conn.fetchval("SELECT id FROM roles WHERE name = 'user'")
        async with conn.transaction():
            await conn.copy_records_to_table(
                "users",
                records=[_user_row(i, u, password_hash, now) for i, u in enumerate(users)],
                columns=[
                    *("id", "email", "password_hash", "first_name", "last_name"),
                    *("is_active", "is_verified", "created_at", "updated_at"),
                    *("last_login_at", "password_changed_at"),
                ],
            )
            await conn.copy_records_to_table(
                "user_roles",
                records=[(u.id, role, now) for u in users],
                columns=["user_id", "role_id", "created_at"],
            )
            await conn.copy_records_to_table(
                "factors",
                records=[_factor_row(u, now) for u in users],
                columns=[
                    *("id", "user_id", "kind", "label", "created_at", "last_used_at"),
                    *("credential_id", "public_key", "sign_count", "transports"),
                    *("backup_eligible", "backup_state"),
                ],
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return users


async def answered_challenges(
    dsn: str, users: list[PasskeyUser], count: int, secret_key: str, port: int
) -> list[str]:
    """`count` sign-in challenges, as `startPasskeyLogin` makes them, each answered by one of
    the accounts in turn: one finishPasskeyLogin request body a line."""
    server = ServerSecret(secret_key.encode())
    now = datetime.now(UTC)
    rp_hash = hashlib.sha256(RP_ID.encode()).digest()
    rows, bodies = [], []
    for n in range(count):
        user = users[n % len(users)]
        challenge = os.urandom(32)
        row = Challenge(id=uuid.uuid4(), purpose=PASSKEY_LOGIN, user_id=None)
        data = orjson.dumps({"webauthn": b64(challenge)}).decode()
        rows.append((row.id, PASSKEY_LOGIN, None, now, now + LIFETIMES[PASSKEY_LOGIN], 0, data))
        client_data = orjson.dumps(
            {"type": "webauthn.get", "challenge": b64(challenge), "origin": origin(port)}
        )
        auth_data = rp_hash + FLAGS + (0).to_bytes(4, "big")
        signature = user.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        credential = {
            "id": b64(user.credential_id),
            "rawId": b64(user.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(user.id.bytes),
            },
        }
        token = challenge_token(server, row, None)
        variables = {"i": {"challengeToken": token, "credential": credential}}
        bodies.append(orjson.dumps({"query": QUERY, "variables": variables}).decode())
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "challenges",
            records=rows,
            columns=[*("id", "purpose", "user_id", "created_at", "expires_at", "failures", "data")],
        )
    finally:
        await conn.close()
    return bodies


def _user_row(i: int, u: PasskeyUser, password_hash: str, now: datetime) -> tuple[object, ...]:
    names = ("Passkey", f"User{i}")
    return (u.id, f"passkey{i}@example.com", password_hash, *names, True, True, now, now, None, now)


def _factor_row(u: PasskeyUser, now: datetime) -> tuple[object, ...]:
    credential = (u.credential_id, _cose(u.key), 0, json.dumps(["internal"]), True, True)
    return (uuid.uuid4(), u.id, "passkey", "Bench passkey", now, None, *credential)


def _cose(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
    return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: x, -3: y})
