"""A fresh PostgreSQL database for one run, and users seeded by COPY with precomputed hashes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import argon2
import asyncpg

PASSWORD = "bench passphrase 2026"  # every seeded user's password (8+ characters, not common)
ADMIN_EMAIL = "admin@example.com"
CHUNK = 50_000  # rows per COPY: keeps the driver's memory flat at a million users
DISTINCT_HASHES = 64  # argon2 salts to cycle through: a verify costs the same for each


@dataclass(frozen=True, slots=True)
class Argon2Params:
    memory_cost: int = 19456
    time_cost: int = 2
    parallelism: int = 1

    def hasher(self) -> argon2.PasswordHasher:
        # The same construction as identity.security.passwords.PasswordHasher.
        return argon2.PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_cost,
            parallelism=self.parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )


def user_email(i: int) -> str:
    return f"user{i}@example.com"


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def precompute_hashes(params: Argon2Params, count: int) -> list[str]:
    hasher = params.hasher()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # argon2 drops the GIL
        return list(pool.map(lambda _: hasher.hash(PASSWORD), range(count)))


Row = tuple[object, ...]


def _user_rows(count: int, hashes: list[str], start: datetime) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for i in range(count):
        # Distinct creation times, newest last, as real sign-ups would have.
        created = start + timedelta(microseconds=i)
        chunk.append(
            (
                uuid.uuid4(),
                user_email(i),
                hashes[i % len(hashes)],
                f"First{i}",
                f"Last{i}",
                True,
                i % 2 == 0,
                created,
                created,
                None,
                created,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


USER_COLUMNS = [
    "id",
    "email",
    "password_hash",
    "first_name",
    "last_name",
    "is_active",
    "is_verified",
    "created_at",
    "updated_at",
    "last_login_at",
    "password_changed_at",
]


async def seed_users(dsn: str, count: int, params: Argon2Params) -> float:
    """`count` users with the `user` role and one admin; returns the seconds it took."""
    started = time.perf_counter()
    hashes = precompute_hashes(params, min(count, DISTINCT_HASHES))
    conn = await asyncpg.connect(dsn)
    try:
        roles = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM roles")}
        start = datetime.now(UTC) - timedelta(days=365)
        async with conn.transaction():
            for chunk in _user_rows(count, hashes, start):
                await conn.copy_records_to_table("users", records=chunk, columns=USER_COLUMNS)
                await conn.copy_records_to_table(
                    "user_roles",
                    records=[(row[0], roles["user"], row[7]) for row in chunk],
                    columns=["user_id", "role_id", "created_at"],
                )
            admin_id = uuid.uuid4()
            now = datetime.now(UTC)
            admin: Row = (admin_id, ADMIN_EMAIL, hashes[0], "Ada", "Admin", True, True)
            admin += (now, now, None, now)
            await conn.copy_records_to_table(
                "users",
                records=[admin],
                columns=USER_COLUMNS,
            )
            await conn.copy_records_to_table(
                "user_roles",
                records=[(admin_id, roles["admin"], now)],
                columns=["user_id", "role_id", "created_at"],
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def copy_challenges(dsn: str, rows: Sequence[Row]) -> None:
    """Challenge rows (id, purpose, user, created, expires, used, failures, data) by COPY:
    what a flow's first step would have written, for scenarios that measure its second."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "challenges",
            records=rows,
            columns=[
                *("id", "purpose", "user_id", "created_at", "expires_at", "used_at"),
                *("failures", "data"),
            ],
        )
    finally:
        await conn.close()
