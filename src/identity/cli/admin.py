"""Administration from the shell: `create-admin`, `audit prune`."""

from __future__ import annotations

import argparse

from identity.cli.common import (
    Commands,
    command_container,
    execute,
    fail,
    period,
    read_password,
)
from identity.config import Settings


def add_commands(commands: Commands) -> None:
    admin = commands.add_parser(
        "create-admin",
        help="create an admin, or make an existing user an admin (idempotent)",
        description="Create a user with the admin role (verified, since an operator vouches for "
        "the address), or give an existing user the role, keeping their password. The password "
        "of a new user is prompted for, or read from the first line of standard input; "
        "--password puts it in the process list.",
    )
    admin.add_argument("--email", required=True, help="the admin's email address")
    admin.add_argument(
        "--password",
        help="for scripts; otherwise it is prompted for, or read from standard input",
    )
    admin.add_argument("--first-name", default="", help="for a new user (default: empty)")
    admin.add_argument("--last-name", default="", help="for a new user (default: empty)")
    admin.set_defaults(run=_create_admin)

    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(required=True, metavar="ACTION")
    prune = audit_commands.add_parser(
        "prune",
        help="delete events older than a period",
        description="Delete audit events older than a number of days (d) or hours (h).",
    )
    prune.add_argument(
        "--older-than", required=True, type=period, help="e.g. 90d, 12h (days d, hours h)"
    )
    prune.set_defaults(run=_audit_prune)


def _create_admin(settings: Settings, args: argparse.Namespace) -> None:
    from identity.services.errors import ValidationFailed

    async def run() -> None:
        async with command_container(settings) as container:
            async with container.unit_of_work() as uow:
                user = await uow.users.by_email(args.email.strip().lower())
            password = args.password
            if user is None and password is None:
                password = read_password()
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
        execute(run())
    except ValidationFailed as exc:
        fail("; ".join(f"{p.field}: {p.message}" for p in exc.fields))


def _audit_prune(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.unit_of_work() as uow:
            cutoff = container.runtime.clock.now() - args.older_than
            count = await container.admin.prune_audit(uow, cutoff)
        since = cutoff.isoformat(timespec="seconds")
        print(f"identity: deleted {count} audit events older than {since}")

    execute(run())
