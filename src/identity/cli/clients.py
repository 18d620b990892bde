"""OAuth clients: `clients create | list | rotate-secret | delete`.

Run by whoever runs the server, so a first-party client needs no permission check here.
A secret is printed once, on its own line, for a script to capture.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from identity.cli.common import Commands, command_container, execute, fail
from identity.config import Settings


def add_commands(commands: Commands) -> None:
    clients = commands.add_parser("clients", help="OAuth clients: apps that sign in with identity")
    actions = clients.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="register a client; a confidential client's secret is printed once",
        description="Register an app that signs its users in with identity. Prints the client "
        "id and, for a confidential client, its secret (shown this once).",
    )
    create.add_argument("name", help="the name users see on the consent page")
    create.add_argument(
        "--redirect-uri",
        action="append",
        required=True,
        dest="redirect_uris",
        help="an exact redirect URI (https, or http on a loopback host); repeat for more",
    )
    create.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        dest="post_logout_redirect_uris",
        help="where /oauth2/logout may send the browser back to (exact, like a redirect "
        "URI); repeat for more",
    )
    create.add_argument(
        "--public", action="store_true", help="a public client (SPA, native app): no secret"
    )
    create.add_argument("--first-party", action="store_true", help="your own app: no consent page")
    create.add_argument(
        "--scope",
        action="append",
        default=[],
        dest="scopes",
        help="a scope beyond openid, profile, email and offline_access; repeat for more",
    )
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="every client: id, client id, kind and name")
    listing.set_defaults(run=_list)
    rotate = actions.add_parser(
        "rotate-secret", help="a new secret for a confidential client (the old one stops at once)"
    )
    rotate.add_argument("client_id", help="the client's client id")
    rotate.set_defaults(run=_rotate)
    delete = actions.add_parser("delete", help="delete a client with its grants and consents")
    delete.add_argument("client_id", help="the client's client id")
    delete.set_defaults(run=_delete)


def _problems(exc: Exception) -> str:
    from identity.services.errors import ValidationFailed

    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{p.field}: {p.message}" for p in exc.fields)
    return str(exc)


def _create(settings: Settings, args: argparse.Namespace) -> None:
    from identity.services.errors import ValidationFailed

    async def run() -> None:
        async with command_container(settings) as container:
            await container.datakeys.ensure()
            async with container.unit_of_work() as uow:
                try:
                    client, secret = await container.oauth_clients.create(
                        uow,
                        None,
                        name=args.name,
                        redirect_uris=args.redirect_uris,
                        is_confidential=not args.public,
                        is_first_party=args.first_party,
                        allowed_scopes=args.scopes,
                        post_logout_redirect_uris=args.post_logout_redirect_uris,
                    )
                except ValidationFailed as exc:
                    fail(_problems(exc))
        print(f"client_id: {client.client_id}")
        if secret is not None:
            print(f"client_secret: {secret}")
            print("identity: the secret is shown this once; keep it safe", file=sys.stderr)

    execute(run())


def _list(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.reading() as uow:
            rows = await container.oauth_clients.all(uow)
        for row in rows:
            kind = "confidential" if row.is_confidential else "public"
            party = " first-party" if row.is_first_party else ""
            uris = ",".join(row.redirect_uris)
            print(f"{row.id} {row.client_id} {kind}{party} {row.name!r} {uris}")

    execute(run())


async def _client_pk(container: object, client_id: str) -> uuid.UUID:
    from identity.container import Container

    assert isinstance(container, Container)
    async with container.reading() as uow:
        client = await container.oauth_clients.find(uow, client_id)
    if client is None:
        fail(f"no OAuth client {client_id}")
    return client.id


def _rotate(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container:
            await container.datakeys.ensure()
            pk = await _client_pk(container, args.client_id)
            async with container.unit_of_work() as uow:
                _, secret = await container.oauth_clients.rotate_secret(uow, None, pk)
        if secret is None:
            fail(f"{args.client_id} is a public client: it has no secret")
        print(f"client_secret: {secret}")

    execute(run())


def _delete(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container:
            pk = await _client_pk(container, args.client_id)
            async with container.unit_of_work() as uow:
                await container.oauth_clients.delete(uow, None, pk)
        print(f"identity: deleted {args.client_id} with its grants and consents")

    execute(run())
