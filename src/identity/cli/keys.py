"""Signing keys: `keys list | rotate | revoke`."""

from __future__ import annotations

import argparse

from identity.cli.common import Commands, command_container, execute, fail
from identity.config import Settings


def add_commands(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="signing keys: list, rotate, revoke")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    key_list = key_commands.add_parser(
        "list",
        help="show every key and its state",
        description="Show every signing key with its algorithm, state (pending, active, "
        "retired, expired, revoked), activation time and how long it stays published.",
    )
    key_list.set_defaults(run=_keys_list)
    rotate = key_commands.add_parser(
        "rotate",
        help="publish a new key; it signs once JWKS caches have seen it",
        description="Publish a new signing key at once; it starts signing after "
        "IDENTITY_JWKS_MAX_AGE seconds (or --activate-in), when every JWKS cache has seen it. "
        "The old key stays published until the last token it signed has expired. Running "
        "instances pick the change up within IDENTITY_KEY_REFRESH_INTERVAL.",
    )
    rotate.add_argument(
        "--activate-in",
        type=int,
        help="seconds until the new key signs (default: IDENTITY_JWKS_MAX_AGE)",
    )
    rotate.add_argument(
        "--algorithm",
        choices=("RS256", "ES256", "EdDSA"),
        help="the new key's algorithm (default: IDENTITY_JWT_ALGORITHM; RS256 rotates the "
        "ID-token key when another algorithm signs identity's own tokens)",
    )
    rotate.set_defaults(run=_keys_rotate)
    revoke = key_commands.add_parser(
        "revoke",
        help="drop a compromised key at once",
        description="Drop a compromised key at once: tokens it signed stop working on the next "
        "request. If it was the signing key, a newly made key takes over immediately, never an "
        "older one. A key id that starts with - is still read as the id.",
    )
    revoke.add_argument("kid", metavar="KID", help="the key id, as `identity keys list` shows it")
    revoke.set_defaults(run=_keys_revoke)


def _keys_list(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.unit_of_work() as uow:
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

    execute(run())


def _keys_rotate(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.unit_of_work() as uow:
            kid = await container.keys.rotate(
                uow, activate_in=args.activate_in, algorithm=args.algorithm
            )
        delay = settings.jwks_max_age if args.activate_in is None else args.activate_in
        print(f"identity: published key {kid}; it signs in {delay} s, the old key stays published")

    execute(run())


def _keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.unit_of_work() as uow:
            result = await container.keys.revoke(uow, args.kid)
        if not result.revoked:
            fail(f"no unrevoked key {args.kid}")
        print(f"identity: revoked {args.kid}; tokens it signed no longer work")
        if result.replacement:
            print(f"identity: {result.replacement} signs from now on")

    execute(run())
