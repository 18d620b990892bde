"""Running the server and its database: `serve`, `migrate`, `export-schema`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import tempfile

from identity.cli.common import Commands, execute, execute_for, fail
from identity.config import Settings


def add_commands(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP server",
        description="Run the HTTP server. It applies migrations first when IDENTITY_AUTO_MIGRATE "
        "is on, and otherwise refuses a database that is not migrated. More than one worker "
        "needs PostgreSQL and Redis, and cannot be combined with --reload.",
    )
    serve.add_argument("--host", help="address to bind (default: IDENTITY_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: IDENTITY_PORT, 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--reload", action="store_true", help="restart on code changes (development)"
    )
    serve.set_defaults(run=_serve, creates_database=True)

    migrate = commands.add_parser(
        "migrate",
        help="upgrade the database to the latest schema",
        description="Upgrade the database of IDENTITY_DATABASE_URL to the newest revision, or to "
        "--revision. It never downgrades, and says so when the revision is older than the "
        "database. Run it once before starting production instances.",
    )
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(run=_migrate, creates_database=True)

    export = commands.add_parser(
        "export-schema",
        help="print the GraphQL schema (SDL)",
        description="Print the GraphQL schema (SDL) that clients generate code from; "
        "schema.graphql in the repository is its output.",
    )
    export.set_defaults(run=_export_schema, creates_database=True)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from identity.db import migrate

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if args.workers < 1:
        fail("--workers must be at least 1", code=2)
    if args.workers > 1 and settings.is_sqlite:
        fail("several workers need PostgreSQL: set IDENTITY_DATABASE_URL=postgresql+asyncpg://…")
    if args.workers > 1 and settings.redis_url is None:
        fail("several workers need Redis for shared rate limits: set IDENTITY_REDIS_URL=redis://…")
    if args.workers > 1 and args.reload:
        fail("--reload runs one process; drop --workers")
    if not settings.is_production and not _is_loopback(host):
        print(
            f"identity: warning: a development server is listening on {host}, not only on this "
            "machine; set IDENTITY_ENV=production for a real deployment",
            file=sys.stderr,
        )
    if port != 0 and not _port_free(host, port):
        fail(f"{host}:{port} is in use: stop what listens there, or choose --port / IDENTITY_PORT")
    # Workers read their settings again: what the command line chose must reach them too
    # (and a public URL left to its default follows the port).
    os.environ["IDENTITY_HOST"], os.environ["IDENTITY_PORT"] = host, str(port)
    # A secret that opens no signing key (or data key) would fail every worker's start-up
    # with a traceback: said here, before anything else, in one line (a ConfigError).
    execute(_check_secret(settings))
    if settings.migrate_on_start:
        migrate.upgrade(settings.database_url)
    else:
        try:
            execute(_check_migrated(settings))
        except migrate.NotMigrated as exc:
            fail(str(exc))
    # Migrations are done (or checked): workers only check again.
    os.environ["IDENTITY_AUTO_MIGRATE"] = "false"
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # /metrics then reports every worker, not only the one that answers.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="identity-metrics-")
    uvicorn.run(
        "identity.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers if args.workers > 1 else None,
        reload=args.reload,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is read only from trusted proxies, by identity
        timeout_graceful_shutdown=20,
    )


async def _check_migrated(settings: Settings) -> None:
    from identity.db import migrate
    from identity.db.engine import create_engine

    engine = create_engine(settings)
    try:
        await migrate.check_migrated(engine)
    finally:
        await engine.dispose()


async def _check_secret(settings: Settings) -> None:
    from identity.container import Container
    from identity.db import migrate

    container = Container.create(settings)
    try:
        if await migrate.current_revision(container.engine) is None:
            return  # a new database: its first key will be sealed with this secret
        async with container.unit_of_work() as uow:
            await container.secrets.check_start_up(uow)
    finally:
        await container.close()


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    """Upgrade only: a target older than the database is refused, never applied downwards."""
    from alembic.util.exc import CommandError

    from identity.db import migrate

    before = execute_for(_revision(settings))
    try:
        migrate.upgrade(settings.database_url, args.revision)
    except CommandError as exc:
        fail(f"cannot migrate to {args.revision!r}: {exc}")
    after = execute_for(_revision(settings))
    if before == after and args.revision not in ("head", "heads", after):
        fail(
            f"the database is at {after}, which is not older than {args.revision}: "
            "nothing done (this command only upgrades)"
        )
    if before == after:
        print(f"identity: database at {after}, already up to date")
    else:
        print(f"identity: database at {after} (was {before or 'empty'})")


async def _revision(settings: Settings) -> str | None:
    from identity.db import migrate
    from identity.db.engine import create_engine

    engine = create_engine(settings)
    try:
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()


def _export_schema(settings: Settings, args: argparse.Namespace) -> None:
    from identity.graphql.schema import sdl

    sys.stdout.write(sdl())
