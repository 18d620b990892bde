"""`identity serve | migrate | create-admin | export-schema | keys | mail | audit | users …`"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from identity.config import ConfigError, Settings, load_settings
from identity.logs import configure_logging

if TYPE_CHECKING:
    from identity.container import Container
    from identity.services.transfer import ImportReport

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(_kid_as_operand(list(sys.argv[1:] if argv is None else argv)))
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", code=2)
    configure_logging(settings)
    if args.run not in (_serve, _migrate, _export_schema):
        _require_existing_database(settings)
    try:
        args.run(settings, args)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", code=2)
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
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="address to bind (default: IDENTITY_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: IDENTITY_PORT, 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--reload", action="store_true", help="restart on code changes (development)"
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database to the latest schema")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(run=_migrate)

    admin = commands.add_parser(
        "create-admin", help="create an admin, or make an existing user an admin (idempotent)"
    )
    admin.add_argument("--email", required=True)
    admin.add_argument(
        "--password",
        help="for scripts; otherwise it is prompted for, or read from standard input",
    )
    admin.add_argument("--first-name", default="")
    admin.add_argument("--last-name", default="")
    admin.set_defaults(run=_create_admin)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(run=_export_schema)

    keys = commands.add_parser("keys", help="signing keys: list, rotate, revoke")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    key_list = key_commands.add_parser("list", help="show every key and its state")
    key_list.set_defaults(run=_keys_list)
    rotate = key_commands.add_parser(
        "rotate", help="publish a new key; it signs once JWKS caches have seen it"
    )
    rotate.add_argument(
        "--activate-in",
        type=int,
        help="seconds until the new key signs (default: IDENTITY_JWKS_MAX_AGE)",
    )
    rotate.set_defaults(run=_keys_rotate)
    revoke = key_commands.add_parser("revoke", help="drop a compromised key at once")
    revoke.add_argument("kid")
    revoke.set_defaults(run=_keys_revoke)

    mail = commands.add_parser("mail", help="the mail outbox")
    mail_commands = mail.add_subparsers(required=True, metavar="ACTION")
    status = mail_commands.add_parser("status", help="counts, and the pending and failed messages")
    status.set_defaults(run=_mail_status)

    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(required=True, metavar="ACTION")
    prune = audit_commands.add_parser("prune", help="delete events older than a period")
    prune.add_argument(
        "--older-than", required=True, type=_period, help="e.g. 90d, 12h (days d, hours h)"
    )
    prune.set_defaults(run=_audit_prune)
    users = commands.add_parser("users", help="move users in and out (JSON Lines)")
    user_commands = users.add_subparsers(required=True, metavar="ACTION")
    load = user_commands.add_parser(
        "import", help="create users from a JSON Lines file, or update them (idempotent)"
    )
    load.add_argument("file", help="a JSON Lines file, or - for standard input")
    load.add_argument(
        "--overwrite",
        action="store_true",
        help="the file also wins for existing users' password hashes, active flags and roles",
    )
    load.add_argument(
        "--batch-size", type=int, default=1000, help="users per transaction (default 1000)"
    )
    load.set_defaults(run=_users_import)
    dump = user_commands.add_parser("export", help="write every user to a JSON Lines file")
    dump.add_argument("file", help="the file to write (mode 600), or - for standard output")
    dump.set_defaults(run=_users_export)
    return parser


def _require_existing_database(settings: Settings) -> None:
    """Commands on an existing database must not create a new SQLite file (and, beside it, a
    new development secret) when they are run from another folder than the server's."""
    if not settings.is_sqlite:
        return
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database
    if database and database != ":memory:" and not Path(database).exists():
        _fail(
            f"no database at {database}: run this command in the folder the server runs in, "
            "or set IDENTITY_DATABASE_URL (`identity migrate` creates a new one)"
        )


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"identity: {message}", file=sys.stderr)
    sys.exit(code)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from identity.db import migrate

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if args.workers < 1:
        _fail("--workers must be at least 1", code=2)
    if args.workers > 1 and settings.is_sqlite:
        _fail("several workers need PostgreSQL: set IDENTITY_DATABASE_URL=postgresql+asyncpg://…")
    if args.workers > 1 and settings.redis_url is None:
        _fail("several workers need Redis for shared rate limits: set IDENTITY_REDIS_URL=redis://…")
    if args.workers > 1 and args.reload:
        _fail("--reload runs one process; drop --workers")
    if not settings.is_production and not _is_loopback(host):
        print(
            f"identity: warning: a development server is listening on {host}, not only on this "
            "machine; set IDENTITY_ENV=production for a real deployment",
            file=sys.stderr,
        )
    if port != 0 and not _port_free(host, port):
        _fail(f"{host}:{port} is in use: stop what listens there, or choose --port / IDENTITY_PORT")
    # Workers read their settings again: what the command line chose must reach them too
    # (and a public URL left to its default follows the port).
    os.environ["IDENTITY_HOST"], os.environ["IDENTITY_PORT"] = host, str(port)
    if settings.migrate_on_start:
        migrate.upgrade(settings.database_url)
    else:
        try:
            _run(_check_migrated(settings))
        except migrate.NotMigrated as exc:
            _fail(str(exc))
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

    before = _run_for(_revision(settings))
    try:
        migrate.upgrade(settings.database_url, args.revision)
    except CommandError as exc:
        _fail(f"cannot migrate to {args.revision!r}: {exc}")
    after = _run_for(_revision(settings))
    if before == after and args.revision not in ("head", "heads", after):
        _fail(
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


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            _fail("the passwords do not match")
        return first
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        _fail("no password on standard input (or give --password)")
    return password


def _create_admin(settings: Settings, args: argparse.Namespace) -> None:
    from identity.services.errors import ValidationFailed

    async def run() -> None:
        async with _container(settings) as container:
            async with container.unit_of_work() as uow:
                user = await uow.users.by_email(args.email.strip().lower())
            password = args.password
            if user is None and password is None:
                password = _read_password()
            async with container.unit_of_work() as uow:
                grant = await container.admin.ensure_admin(
                    uow, args.email, password, args.first_name, args.last_name
                )
        if grant.created:
            print(f"identity: created admin {grant.user.email}")
            return
        kept = "; their password is unchanged (use requestPasswordReset to change it)"
        if grant.granted:
            print(f"identity: {grant.user.email} is now an admin{kept}")
        else:
            print(f"identity: {grant.user.email} is already an admin{kept}")

    try:
        _run(run())
    except ValidationFailed as exc:
        _fail("; ".join(f"{p.field}: {p.message}" for p in exc.fields))


def _export_schema(settings: Settings, args: argparse.Namespace) -> None:
    from identity.graphql.schema import sdl

    sys.stdout.write(sdl())


def _keys_list(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with _container(settings) as container, container.unit_of_work() as uow:
            states = await container.keys.states(uow)
        print(f"{'KID':<44} {'ALG':<6} {'STATE':<8} {'ACTIVATES':<26} PUBLISHED UNTIL")
        for s in states:
            until = s.published_until.isoformat(timespec="seconds") if s.published_until else "-"
            if s.state == "pending":
                until = "(signs from ACTIVATES)"
            elif s.state == "active":
                until = "(signing)"
            print(
                f"{s.kid:<44} {s.algorithm:<6} {s.state:<8} "
                f"{s.activates_at.isoformat(timespec='seconds'):<26} {until}"
            )

    _run(run())


def _keys_rotate(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with _container(settings) as container, container.unit_of_work() as uow:
            kid = await container.keys.rotate(uow, activate_in=args.activate_in)
        delay = settings.jwks_max_age if args.activate_in is None else args.activate_in
        print(f"identity: published key {kid}; it signs in {delay} s, the old key stays published")

    _run(run())


def _keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with _container(settings) as container, container.unit_of_work() as uow:
            result = await container.keys.revoke(uow, args.kid)
        if not result.revoked:
            _fail(f"no unrevoked key {args.kid}")
        print(f"identity: revoked {args.kid}; tokens it signed no longer work")
        if result.replacement:
            print(f"identity: {result.replacement} signs from now on")

    _run(run())


def _mail_status(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with _container(settings) as container, container.reading() as uow:
            counts = await uow.outbox_messages.counts()
            waiting = await uow.outbox_messages.pending()
        print(f"pending {counts['pending']}  failed {counts['failed']}  sent {counts['sent']}")
        for m in waiting:
            state = "failed " if m.failed_at else "pending"
            when = (m.failed_at or m.next_attempt_at).isoformat(timespec="seconds")
            print(
                f"{state} {m.id} {m.template:<24} {m.recipient:<32} attempts={m.attempts} "
                f"{'failed_at' if m.failed_at else 'next'}={when} {m.last_error or ''}".rstrip()
            )

    _run(run())


def _period(text: str) -> timedelta:
    units = {"d": "days", "h": "hours"}
    try:
        value, unit = int(text[:-1]), units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise argparse.ArgumentTypeError("use a number of days or hours, e.g. 90d or 12h") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return timedelta(**{unit: value})


def _audit_prune(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with _container(settings) as container, container.unit_of_work() as uow:
            cutoff = container.runtime.clock.now() - args.older_than
            count = await container.admin.prune_audit(uow, cutoff)
        since = cutoff.isoformat(timespec="seconds")
        print(f"identity: deleted {count} audit events older than {since}")

    _run(run())


def _users_import(settings: Settings, args: argparse.Namespace) -> None:
    from identity.services.transfer import MAX_BATCH_SIZE, BadLine, ImportFailed

    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        _fail(f"--batch-size must be 1 to {MAX_BATCH_SIZE}", code=2)

    def bad_line(bad: BadLine) -> None:
        print(f"identity: line {bad.line}: {'; '.join(bad.problems)}", file=sys.stderr)

    async def run(source: IO[bytes]) -> ImportReport:
        async with _container(settings) as container, container.unit_of_work() as uow:
            return await container.transfer.import_users(
                uow,
                source,
                overwrite=args.overwrite,
                batch_size=args.batch_size,
                on_bad_line=bad_line,
            )

    name = "standard input" if args.file == "-" else args.file
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        _fail(f"cannot read {args.file}: {exc.strerror}")
    try:
        report = _run_for(run(source))
    except ImportFailed as exc:
        print(_import_summary(exc.report, name), file=sys.stderr)
        before = (
            "nothing was imported"
            if exc.first_line == 1
            else f"the lines before line {exc.first_line} were imported"
        )
        _fail(f"{exc}; {before}, and running again is safe")
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    print(_import_summary(report, name))
    if report.bad:
        _fail(f"{report.bad} bad line{'s' if report.bad != 1 else ''} skipped (see above)")


def _import_summary(report: ImportReport, name: str) -> str:
    return (
        f"identity: imported {report.imported} users from {name}: {report.created} created, "
        f"{report.updated} updated, {report.unchanged} unchanged; {report.bad} bad lines"
        + (f"; sessions ended for {report.sessions_ended}" if report.sessions_ended else "")
    )


def _users_export(settings: Settings, args: argparse.Namespace) -> None:
    async def run(out: IO[bytes]) -> int:
        count = 0
        async with _container(settings) as container:
            async with container.snapshots() as db:
                async for line in container.transfer.export_lines(db):
                    out.write(line)
                    count += 1
            # Every password hash left the database: that is worth a line in the audit log.
            async with container.unit_of_work() as uow:
                uow.audit.record("cli.users_exported", users=count)
                await uow.commit()
        return count

    if args.file == "-":
        try:
            count = _run_for(run(sys.stdout.buffer))
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. `| head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        print(f"identity: exported {count} users", file=sys.stderr)
        return
    # The file holds password hashes: private, and complete or not there at all.
    target = Path(args.file)
    try:
        partial = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
        )
    except OSError as exc:
        _fail(f"cannot write {args.file}: {exc.strerror}")
    try:
        with partial:
            count = _run_for(run(partial))
        os.replace(partial.name, target)
    finally:
        if os.path.exists(partial.name):
            os.unlink(partial.name)
    print(f"identity: exported {count} users to {target}")


@asynccontextmanager
async def _container(settings: Settings) -> AsyncIterator[Container]:
    """The container for a CLI command, on a migrated database."""
    from identity.container import Container
    from identity.db import migrate

    container = Container.create(settings)
    try:
        try:
            await migrate.check_migrated(container.engine)
        except migrate.NotMigrated as exc:
            _fail(str(exc))
        yield container
    finally:
        await container.close()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def _run_for(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
