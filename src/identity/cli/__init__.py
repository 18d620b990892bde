"""`identity serve | migrate | create-admin | export-schema | keys | secret | mail | webhooks |
clients | audit | users …`

One module per area; each adds its commands to the parser with `add_commands`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from identity.cli import admin, clients, keys, mail, secret, serve, users, webhooks
from identity.cli.common import fail
from identity.config import ConfigError, Settings, load_settings
from identity.logs import configure_logging

AREAS = (serve, admin, keys, secret, mail, webhooks, clients, users)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(_kid_as_operand(list(sys.argv[1:] if argv is None else argv)))
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(f"configuration error: {exc}", code=2)
    configure_logging(settings)
    if not args.creates_database:
        _require_existing_database(settings)
    try:
        args.run(settings, args)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", code=2)
    except KeyboardInterrupt:
        sys.exit(130)


def _kid_as_operand(argv: list[str]) -> list[str]:
    """Key ids are base64url and may start with "-", which argparse would take for an option:
    `identity keys revoke -To05…` reads the id as an operand, as if after `--`."""
    if argv[:2] == ["keys", "revoke"] and len(argv) == 3 and argv[2] not in ("-h", "--help"):
        return [*argv[:2], "--", argv[2]]
    return argv


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="identity", description="An async GraphQL identity API.")
    parser.set_defaults(creates_database=False)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for area in AREAS:
        area.add_commands(commands)
    return parser


def _require_existing_database(settings: Settings) -> None:
    """Commands on an existing database must not create a new SQLite file (and, beside it, a
    new development secret) when they are run from another folder than the server's."""
    if not settings.is_sqlite:
        return
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database
    if database and database != ":memory:" and not Path(database).exists():
        fail(
            f"no database at {database}: run this command in the folder the server runs in, "
            "or set IDENTITY_DATABASE_URL (`identity migrate` creates a new one)"
        )
