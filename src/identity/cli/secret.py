"""The server secret: `secret check | reencrypt`, for a rotation (docs/guides/secret-rotation.md).

Neither prints a secret: secrets are named by where they are set (IDENTITY_SECRET_KEY, the
first, second… entry of IDENTITY_SECRET_KEY_FALLBACKS).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from identity.cli.common import Commands, command_container, execute_for, fail
from identity.config import Settings

if TYPE_CHECKING:
    from identity.services.secrets import SealedCount

DERIVED = (
    "identity: derived tokens (refresh tokens, links, mfaTokens, cursors) are not stored: each "
    "works while the secret that made it is current or a fallback"
)


def add_commands(commands: Commands) -> None:
    secret = commands.add_parser("secret", help="the server secret: check, reencrypt")
    actions = secret.add_subparsers(required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="count what the current secret and each fallback open (exit 1: some none)"
    )
    check.set_defaults(run=_check)
    reencrypt = actions.add_parser(
        "reencrypt", help="re-seal under the current secret what a fallback opens"
    )
    reencrypt.add_argument(
        "--batch-size", type=_positive, default=100, help="rows per transaction (default 100)"
    )
    reencrypt.set_defaults(run=_reencrypt)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _check(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> list[SealedCount]:
        async with command_container(settings) as container, container.unit_of_work() as uow:
            return await container.secrets.check(uow)

    counts = execute_for(run())
    fallbacks = len(_positions(settings))
    header = ["SEALED", "ROWS", "CURRENT", *(f"FALLBACK {n}" for n in _positions(settings))]
    rows = [
        [c.name, str(c.rows - c.empty), *(str(n) for n in c.opened_by), str(c.unopenable)]
        for c in counts
    ]
    _table([[*header, "NONE"], *rows])
    unopenable = sum(c.unopenable for c in counts)
    fallback_only = sum(c.fallback_only for c in counts)
    if fallback_only:
        print(
            f"identity: {fallback_only} open only with a fallback: run `identity secret "
            "reencrypt` before that fallback is dropped"
        )
    elif fallbacks:
        print("identity: every sealed value opens with IDENTITY_SECRET_KEY")
    print(DERIVED)
    if unopenable:
        fail(f"{unopenable} sealed values open with no secret given: add the one they need")


def _reencrypt(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> list[SealedCount]:
        async with command_container(settings) as container, container.unit_of_work() as uow:
            return await container.secrets.reencrypt(uow, args.batch_size)

    counts = execute_for(run())
    for c in counts:
        line = (
            f"identity: {c.name}: {c.resealed} re-sealed under IDENTITY_SECRET_KEY, "
            f"{c.opened_by[0]} were already"
        )
        if c.changed_meanwhile:
            line += f", {c.changed_meanwhile} changed by a server meanwhile (left as they are)"
        print(line)
    unopenable = sum(c.unopenable for c in counts)
    if unopenable:
        fail(f"{unopenable} sealed values open with no secret given: left as they are")


def _positions(settings: Settings) -> list[int]:
    """Where each fallback in use stands in IDENTITY_SECRET_KEY_FALLBACKS (from 1): the
    current secret, if listed there too, is not a fallback."""
    current = settings.secret()
    given = [s.get_secret_value().encode() for s in settings.secret_key_fallbacks]
    return [n for n, secret in enumerate(given, 1) if secret != current]


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        sys.stdout.write("  ".join(cells) + "\n")
