"""Alembic, driven from code: `identity migrate`, start-up checks, tests.

Alembic is imported only to migrate: a server that merely checks the revision does not
load it (about 11 MB per process).
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from identity.db.models import MIGRATION_ONLY_INDEXES

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions; a test keeps it in step with Alembic's head.
HEAD = "0010"


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What autogenerate compares: not the indexes only the migrations know (see models)."""
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("identity.migrations")))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking; from a running event loop, call it with asyncio.to_thread."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    """Alembic's own view of the newest revision (HEAD must agree)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        has_table = await connection.run_sync(
            lambda sync: inspect(sync).has_table("alembic_version")
        )
        if not has_table:
            return None
        version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        return str(version) if version is not None else None


class NotMigrated(Exception):
    pass


async def check_migrated(engine: AsyncEngine) -> None:
    current = await current_revision(engine)
    if current != HEAD:
        raise NotMigrated(
            f"the database is at revision {current or 'none (empty)'}, the code needs {HEAD}: "
            "run `identity migrate`"
        )
