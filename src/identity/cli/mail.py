"""The mail outbox: `mail status`."""

from __future__ import annotations

import argparse

from identity.cli.common import Commands, command_container, execute
from identity.config import Settings


def add_commands(commands: Commands) -> None:
    mail = commands.add_parser("mail", help="the mail outbox")
    mail_commands = mail.add_subparsers(required=True, metavar="ACTION")
    status = mail_commands.add_parser(
        "status",
        help="counts, and the pending and failed messages",
        description="Print the number of pending, failed and sent messages, then each message "
        "not yet sent with its template, recipient, attempts, next try (or failure time) and "
        "last error.",
    )
    status.set_defaults(run=_mail_status)


def _mail_status(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.reading() as uow:
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

    execute(run())
