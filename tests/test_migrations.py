"""Migrations: an empty database upgrades to head, matches the models, downgrades to base."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from identity.db import migrate
from identity.db.models import Base
from tests.conftest import Database, create_postgres_database, drop_postgres_database


@pytest.fixture
async def empty_database(database: Database, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the same backend as `database`, but new and empty."""
    if database.backend == "postgresql":
        name, url = await create_postgres_database()
        try:
            yield url
        finally:
            await drop_postgres_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


async def _diff_and_tables(url: str) -> tuple[list[object], set[str]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:

            def inspect_sync(sync):  # type: ignore[no-untyped-def]
                context = MigrationContext.configure(
                    sync, opts={"compare_type": True, "include_object": migrate.include_object}
                )
                return compare_metadata(context, Base.metadata), set(
                    inspect(sync).get_table_names()
                )

            return await connection.run_sync(inspect_sync)
    finally:
        await engine.dispose()


async def test_upgrade_matches_models_and_downgrade_empties(empty_database: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database)
    diff, tables = await _diff_and_tables(empty_database)
    assert diff == []
    assert set(Base.metadata.tables) <= tables

    await asyncio.to_thread(migrate.downgrade, empty_database, "base")
    _, tables = await _diff_and_tables(empty_database)
    assert tables <= {"alembic_version"}

    await asyncio.to_thread(migrate.upgrade, empty_database)  # and back up again
    diff, _ = await _diff_and_tables(empty_database)
    assert diff == []


async def test_check_migrated_reports_an_empty_database(empty_database: str) -> None:
    engine = create_async_engine(empty_database, poolclass=NullPool)
    try:
        with pytest.raises(migrate.NotMigrated, match="identity migrate"):
            await migrate.check_migrated(engine)
        await asyncio.to_thread(migrate.upgrade, empty_database)
        await migrate.check_migrated(engine)
    finally:
        await engine.dispose()


def test_the_head_constant_is_alembics_head() -> None:
    assert migrate.head_revision() == migrate.HEAD, "update HEAD in identity/db/migrate.py"


async def test_second_factors_upgrade_a_database_with_users_and_sessions(
    empty_database: str,
) -> None:
    """0004 → head on a database in use: sessions keep working at aal 1, by password (0005),
    as bearer sessions (0008)."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    await asyncio.to_thread(migrate.upgrade, empty_database, "0004")
    engine = create_async_engine(empty_database, poolclass=NullPool)
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    created = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    sqlite = empty_database.startswith("sqlite")

    def db_id(value: uuid.UUID) -> str:
        return value.hex if sqlite else str(value)

    def db_time(value: datetime) -> object:
        return value.replace(tzinfo=None).isoformat(" ") if sqlite else value

    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, first_name, last_name,"
                    " is_active, is_verified, created_at, updated_at)"
                    " VALUES (:id, 'old@example.com', 'x', 'Old', 'User', true, true, :t, :t)"
                ),
                {"id": db_id(user_id), "t": db_time(created)},
            )
            await connection.execute(
                text(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at,"
                    " refresh_counter, refreshed_at) VALUES (:id, :u, :t, :t, :t, 0, :t)"
                ),
                {"id": db_id(session_id), "u": db_id(user_id), "t": db_time(created)},
            )
        await asyncio.to_thread(migrate.upgrade, empty_database)
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT aal, amr, authenticated_at, dpop_jkt FROM sessions")
                )
            ).one()
            roles = (await connection.execute(text("SELECT requires_mfa FROM roles"))).all()
    finally:
        await engine.dispose()
    assert row[0] == 1
    assert (json.loads(row[1]) if isinstance(row[1], str) else row[1]) == ["pwd"]
    assert str(row[2]).startswith("1970-01-01 00:00:00")  # a sign-in long ago
    assert row[3] is None  # 0008: bound to no DPoP key, a bearer session as before
    assert roles
    assert all(not r[0] for r in roles)


async def test_0006_upgrades_a_database_with_users_and_mail_in_it(empty_database: str) -> None:
    """Existing users get empty metadata; the outbox's rows get the state their timestamps
    said (mail voided before delivery was `failed` with "skipped: …"); admin gets webhooks."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    await asyncio.to_thread(migrate.upgrade, empty_database, "0004")
    engine = create_async_engine(empty_database, poolclass=NullPool)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = {
        "sent": (now, None, None),
        "voided": (None, now, "skipped: the link in it was used, replaced or expired"),
        "failed": (None, now, "SMTPRecipientsRefused: nope"),
        "pending": (None, None, "SMTPConnectError: later"),
    }
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, first_name, last_name, "
                    "is_active, is_verified, created_at, updated_at) VALUES "
                    "(:id, 'old@example.com', NULL, 'Old', 'User', true, true, :now, :now)"
                ),
                {"id": uuid.uuid4().hex, "now": now},
            )
            for name, (sent, failed, error) in rows.items():
                await connection.execute(
                    text(
                        "INSERT INTO outbox_messages (id, created_at, template, recipient, "
                        "context, attempts, next_attempt_at, sent_at, failed_at, last_error) "
                        "VALUES (:id, :now, :template, 'old@example.com', '{}', 1, :now, :sent, "
                        ":failed, :error)"
                    ),
                    {
                        "id": uuid.uuid4().hex,
                        "now": now,
                        "template": name,
                        "sent": sent,
                        "failed": failed,
                        "error": error,
                    },
                )
        await asyncio.to_thread(migrate.upgrade, empty_database)
        async with engine.connect() as connection:
            metadata = (
                await connection.execute(text("SELECT app_metadata, user_metadata FROM users"))
            ).one()
            assert [m if isinstance(m, dict) else orjson.loads(m) for m in metadata] == [{}, {}]
            result = await connection.execute(text("SELECT template, state FROM outbox_messages"))
            states: dict[str, str] = dict(result.all())
            assert states == {name: name for name in rows}
            admin = await connection.scalar(
                text(
                    "SELECT count(*) FROM role_permissions rp JOIN roles r ON r.id = rp.role_id "
                    "WHERE r.name = 'admin' AND rp.permission_code LIKE 'webhooks:%'"
                )
            )
            assert admin == 2
    finally:
        await engine.dispose()


async def test_external_accounts_upgrade_a_database_with_users(empty_database: str) -> None:
    """0006 → 0007 on a database in use: users keep their passwords, none is linked yet."""
    from sqlalchemy import text

    await asyncio.to_thread(migrate.upgrade, empty_database, "0006")
    engine = create_async_engine(empty_database, poolclass=NullPool)
    user_id = uuid.uuid4()
    sqlite = empty_database.startswith("sqlite")
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, first_name, last_name,"
                    " is_active, is_verified, created_at, updated_at)"
                    " VALUES (:id, 'old@example.com', 'x', 'Old', 'User', true, true,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": user_id.hex if sqlite else str(user_id)},
            )
        await asyncio.to_thread(migrate.upgrade, empty_database)
        async with engine.connect() as connection:
            users = (await connection.execute(text("SELECT email, password_hash FROM users"))).all()
            linked = await connection.scalar(text("SELECT count(*) FROM external_accounts"))
    finally:
        await engine.dispose()
    assert [tuple(u) for u in users] == [("old@example.com", "x")]
    assert linked == 0


async def test_0010_keeps_where_registered_clients_return_after_logout(
    empty_database: str,
) -> None:
    """0009 → 0010 with a client registered: its redirect URIs, which served as logout
    targets until now, become its post-logout redirect URIs."""
    from sqlalchemy import text

    await asyncio.to_thread(migrate.upgrade, empty_database, "0009")
    engine = create_async_engine(empty_database, poolclass=NullPool)
    client_id = uuid.uuid4()
    sqlite = empty_database.startswith("sqlite")
    uris = ["https://wiki.example.com/callback", "https://wiki.example.com/other"]
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO oauth_clients (id, client_id, name, redirect_uris,"
                    " is_confidential, is_first_party, allowed_scopes, created_at, updated_at)"
                    " VALUES (:id, 'c1', 'Wiki', :uris, true, false, '[]',"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": client_id.hex if sqlite else str(client_id), "uris": json.dumps(uris)},
            )
        await asyncio.to_thread(migrate.upgrade, empty_database)
        async with engine.connect() as connection:
            kept = await connection.scalar(
                text("SELECT post_logout_redirect_uris FROM oauth_clients")
            )
    finally:
        await engine.dispose()
    assert (json.loads(kept) if isinstance(kept, str) else kept) == uris
