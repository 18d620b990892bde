"""Authorization codes for the `oauth-code-exchange` scenario: `/oauth2/token` with PKCE.

A code is single use and lives a minute, and making one takes a browser through the hosted
sign-in and consent pages; the load generator cannot. So the codes are written here by COPY,
as the hosted pages would leave them (identity's own token derivation, the client, the
redirect URI, the PKCE challenge, a live hosted session of the user), just before the run.
The requests then measure exactly the code exchange: the client, the code, the verifier, the
authorizing session, the grant row, an access token and an RS256 ID token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import orjson

from bench import seed
from identity.db.models import Challenge, User
from identity.security.derive import ServerSecret
from identity.services.challenges import LIFETIMES, OAUTH_CODE, challenge_token

REDIRECT_URI = "http://127.0.0.1/callback"
SCOPES = ["openid", "profile", "email"]
USERS = 500


@dataclass(frozen=True, slots=True)
class Client:
    id: uuid.UUID  # the row's id, which codes name
    client_id: str  # what the token request sends


@dataclass(frozen=True, slots=True)
class Signer:
    """A user of the bench with a live hosted session, which authorized their codes."""

    id: uuid.UUID
    password_changed_at: datetime | None
    session_id: uuid.UUID


def register_client(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """A public client (PKCE, no secret) through the CLI, as an operator would add it."""
    out = subprocess.run(
        [*command, "clients", "create", "Bench wiki", "--public", "--redirect-uri", REDIRECT_URI],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "client_id:" in line)


async def signers(dsn: str, client_id: str, count: int = USERS) -> tuple[Client, list[Signer]]:
    """The client's row and `count` seeded users, each given a hosted browser session."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT id FROM oauth_clients WHERE client_id = $1", client_id)
        users = await conn.fetch(
            "SELECT id, password_changed_at FROM users WHERE email LIKE 'user%' LIMIT $1", count
        )
        ends = now + timedelta(days=1)
        found = [Signer(u["id"], u["password_changed_at"], uuid.uuid4()) for u in users]
        await conn.copy_records_to_table(
            "sessions",
            records=[
                (s.session_id, s.id, now, now, now, ends, 0, 1, '["pwd"]', now) for s in found
            ],
            columns=[
                *("id", "user_id", "created_at", "last_used_at", "refreshed_at", "expires_at"),
                *("refresh_counter", "aal", "amr", "authenticated_at"),
            ],
        )
    finally:
        await conn.close()
    return Client(row["id"], client_id), found


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def codes(
    dsn: str, client: Client, users: list[Signer], count: int, secret_key: str
) -> list[str]:
    """`count` fresh codes, each a whole token request body (form-encoded) on its own line."""
    server = ServerSecret(secret_key.encode())
    now = datetime.now(UTC)
    verifier, challenge = pkce()
    rows, bodies = [], []
    for n in range(count):
        u = users[n % len(users)]
        row = Challenge(id=uuid.uuid4(), purpose=OAUTH_CODE, user_id=u.id)
        token = challenge_token(
            server, row, User(id=u.id, password_changed_at=u.password_changed_at)
        )
        data = {
            "client": str(client.id),
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPES,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "session": str(u.session_id),
            "auth_time": int(now.timestamp()),
            "aal": 1,
            "amr": ["pwd"],
        }
        expires = now + LIFETIMES[OAUTH_CODE]
        rows.append((row.id, OAUTH_CODE, u.id, now, expires, None, 0, orjson.dumps(data).decode()))
        form = {
            "grant_type": "authorization_code",
            "code": token,
            "redirect_uri": REDIRECT_URI,
            "client_id": client.client_id,
            "code_verifier": verifier,
        }
        bodies.append(urlencode(form))
    await seed.copy_challenges(dsn, rows)
    return bodies
