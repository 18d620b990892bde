"""The engine and the session factory: one of each per process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from identity.config import Settings


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    url = settings.database_url
    # Database errors end up in logs and in the outbox's last_error: never with the bound
    # values (password hashes, addresses, token digests) that SQLAlchemy would append.
    overrides.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **overrides)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    options: dict[str, Any] = {
        # No ping per checkout (a round trip each time): a connection that died is detected
        # when it fails, and SQLAlchemy then invalidates the pool (the outage test shows it).
        "pool_pre_ping": False,
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_recycle": 1800,
    }
    options.update(overrides)
    if options.get("poolclass") is NullPool:
        for key in ("pool_size", "max_overflow", "pool_recycle"):
            options.pop(key, None)
    return create_async_engine(url, **options)


WRITE = {"identity_write": True}


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, begin transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # A transaction that will write takes the write lock up front; a deferred one that
    # upgrades later fails at once with SQLITE_BUSY when another writer got in between.
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get("identity_write") else "BEGIN"
    )


def create_sessionmaker(
    engine: AsyncEngine, *, write: bool = False, snapshot: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads, for units of work that change data (write), or for reads that
    need one consistent snapshot or a server-side cursor (snapshot)."""
    if write:
        bind = engine.execution_options(**WRITE)
    elif engine.dialect.name == "postgresql" and not snapshot:
        # Reads need no transaction: no BEGIN and ROLLBACK round trips around each query.
        bind = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        bind = engine
    # expire_on_commit=False: services release the connection (commit) before slow work
    # such as password hashing and keep using the rows they read.
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
