"""What every command shares: failing with one line, the container, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, TypeVar

from identity.config import Settings

if TYPE_CHECKING:
    from identity.container import Container

T = TypeVar("T")
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"identity: {message}", file=sys.stderr)
    sys.exit(code)


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            fail("the passwords do not match")
        return first
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("no password on standard input (or give --password)")
    return password


def period(text: str) -> timedelta:
    units = {"d": "days", "h": "hours"}
    try:
        value, unit = int(text[:-1]), units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise argparse.ArgumentTypeError("use a number of days or hours, e.g. 90d or 12h") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return timedelta(**{unit: value})


@asynccontextmanager
async def command_container(settings: Settings) -> AsyncIterator[Container]:
    """The container for a CLI command, on a migrated database."""
    from identity.container import Container
    from identity.db import migrate

    built = Container.create(settings)
    try:
        try:
            await migrate.check_migrated(built.engine)
        except migrate.NotMigrated as exc:
            fail(str(exc))
        yield built
    finally:
        await built.close()


def execute(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def execute_for(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
