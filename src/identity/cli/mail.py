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
        help="counts, and the pending, failed and voided messages",
        description="Print the number of pending, failed, voided and sent messages, then each "
        "message not yet sent with its state, template, recipient, attempts, next try (or when "
        "it failed or was voided) and last error.",
    )
    status.set_defaults(run=_mail_status)


def _mail_status(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.reading() as uow:
            counts = await uow.outbox_messages.all_counts()
            waiting = await uow.outbox_messages.unsent()
        print("  ".join(f"{state} {n}" for state, n in counts.items()))
        for m in waiting:
            done = m.failed_at if m.state != "pending" else None
            when = (done or m.next_attempt_at).isoformat(timespec="seconds")
            print(
                f"{m.state:<7} {m.id} {m.template:<24} {m.recipient:<32} attempts={m.attempts} "
                f"{'at' if done else 'next'}={when} {m.last_error or ''}".rstrip()
            )

    execute(run())
