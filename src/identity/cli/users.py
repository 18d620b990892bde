"""Moving users in and out: `users import | export` (JSON Lines)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from identity.cli.common import Commands, command_container, execute_for, fail
from identity.config import Settings

if TYPE_CHECKING:
    from identity.services.transfer import ImportReport


def add_commands(commands: Commands) -> None:
    users = commands.add_parser("users", help="move users in and out (JSON Lines)")
    user_commands = users.add_subparsers(required=True, metavar="ACTION")
    load = user_commands.add_parser(
        "import",
        help="create users from a JSON Lines file, or update them (idempotent)",
        description="Create users from a JSON Lines file, or update them. A bad line is reported "
        "with its number and skipped, and the exit status is then 1; running it again never "
        "duplicates anyone.",
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
    dump = user_commands.add_parser(
        "export",
        help="write every user to a JSON Lines file",
        description="Write every user, with their password hash, to a JSON Lines file, oldest "
        "first, from one consistent snapshot. The file is created with mode 600 and appears "
        "only when complete.",
    )
    dump.add_argument("file", help="the file to write (mode 600), or - for standard output")
    dump.set_defaults(run=_users_export)


def _users_import(settings: Settings, args: argparse.Namespace) -> None:
    from identity.services.transfer import MAX_BATCH_SIZE, BadLine, ImportFailed

    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        fail(f"--batch-size must be 1 to {MAX_BATCH_SIZE}", code=2)

    def bad_line(bad: BadLine) -> None:
        print(f"identity: line {bad.line}: {'; '.join(bad.problems)}", file=sys.stderr)

    async def run(source: IO[bytes]) -> ImportReport:
        async with command_container(settings) as container, container.unit_of_work() as uow:
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
        fail(f"cannot read {args.file}: {exc.strerror}")
    try:
        report = execute_for(run(source))
    except ImportFailed as exc:
        print(_import_summary(exc.report, name), file=sys.stderr)
        before = (
            "nothing was imported"
            if exc.first_line == 1
            else f"the lines before line {exc.first_line} were imported"
        )
        fail(f"{exc}; {before}, and running again is safe")
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    print(_import_summary(report, name))
    if report.bad:
        fail(f"{report.bad} bad line{'s' if report.bad != 1 else ''} skipped (see above)")


def _import_summary(report: ImportReport, name: str) -> str:
    return (
        f"identity: imported {report.imported} users from {name}: {report.created} created, "
        f"{report.updated} updated, {report.unchanged} unchanged; {report.bad} bad lines"
        + (f"; sessions ended for {report.sessions_ended}" if report.sessions_ended else "")
    )


def _users_export(settings: Settings, args: argparse.Namespace) -> None:
    async def run(out: IO[bytes]) -> int:
        count = 0
        async with command_container(settings) as container:
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
            count = execute_for(run(sys.stdout.buffer))
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
        fail(f"cannot write {args.file}: {exc.strerror}")
    try:
        with partial:
            count = execute_for(run(partial))
        os.replace(partial.name, target)
    finally:
        if os.path.exists(partial.name):
            os.unlink(partial.name)
    print(f"identity: exported {count} users to {target}")
