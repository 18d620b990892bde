"""OAuth clients (clients:write), and a user's consent to one."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.clients import OAuthClient
from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import NotFound, ValidationError
from identity.graphql.mutations import maybe, mutation, parse_id
from identity.graphql.permissions import HasPermission, IsAuthenticated
from identity.services.oauth_clients import ClientChanges

WRITE = HasPermission("clients:write")


@strawberry.input
class CreateOAuthClientInput:
    name: str
    redirect_uris: list[str] = strawberry.field(
        description="https, or http on a loopback host; matched exactly."
    )
    is_confidential: bool = True
    is_first_party: bool = strawberry.field(
        default=False, description="No consent page; needs a caller with every permission."
    )
    allowed_scopes: list[str] = strawberry.field(default_factory=list)
    post_logout_redirect_uris: list[str] = strawberry.field(
        default_factory=list,
        description="Where `/oauth2/logout` may send the browser back to (as redirect URIs: "
        "https, or http on a loopback host; matched exactly). None: logout ends on "
        "identity's own page.",
    )


@strawberry.input(description="Omitted fields stay as they are; null is refused.")
class UpdateOAuthClientInput:
    name: str | None = strawberry.UNSET
    redirect_uris: list[str] | None = strawberry.UNSET
    allowed_scopes: list[str] | None = strawberry.UNSET
    post_logout_redirect_uris: list[str] | None = strawberry.UNSET


@strawberry.type
class CreateOAuthClientSuccess:
    client: OAuthClient
    client_secret: str | None = strawberry.field(
        description="Confidential clients only: shown this once, keep it safe."
    )


@strawberry.type
class UpdateOAuthClientSuccess:
    client: OAuthClient


@strawberry.type
class RotateOAuthClientSecretSuccess:
    client: OAuthClient
    client_secret: str | None = strawberry.field(
        description="The new secret (the old one stops at once); null for a public client."
    )


@strawberry.type
class DeleteOAuthClientSuccess:
    message: str


@strawberry.type
class RevokeConsentSuccess:
    message: str


CreateOAuthClientResult = Annotated[
    CreateOAuthClientSuccess | ValidationError, strawberry.union("CreateOAuthClientResult")
]
UpdateOAuthClientResult = Annotated[
    UpdateOAuthClientSuccess | NotFound | ValidationError,
    strawberry.union("UpdateOAuthClientResult"),
]
RotateOAuthClientSecretResult = Annotated[
    RotateOAuthClientSecretSuccess | NotFound, strawberry.union("RotateOAuthClientSecretResult")
]
DeleteOAuthClientResult = Annotated[
    DeleteOAuthClientSuccess | NotFound, strawberry.union("DeleteOAuthClientResult")
]
RevokeConsentResult = Annotated[
    RevokeConsentSuccess | NotFound, strawberry.union("RevokeConsentResult")
]


@strawberry.type
class ClientMutations:
    @mutation(
        "Register an app that signs in with identity; a secret is shown once.",
        WRITE,
        name="createOAuthClient",
    )
    async def create_oauth_client(
        self, info: GraphQLInfo, input: CreateOAuthClientInput
    ) -> CreateOAuthClientResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            client, secret = await info.context.container.oauth_clients.create(
                uow,
                principal,
                name=input.name,
                redirect_uris=input.redirect_uris,
                is_confidential=input.is_confidential,
                is_first_party=input.is_first_party,
                allowed_scopes=input.allowed_scopes,
                post_logout_redirect_uris=input.post_logout_redirect_uris,
            )
        return CreateOAuthClientSuccess(client=OAuthClient.from_row(client), client_secret=secret)

    @mutation(
        "Edit a client's name, redirect URIs (also those after logout) or scopes.",
        WRITE,
        name="updateOAuthClient",
    )
    async def update_oauth_client(
        self, info: GraphQLInfo, id: strawberry.ID, input: UpdateOAuthClientInput
    ) -> UpdateOAuthClientResult:
        principal = await info.context.require_principal()
        changes = ClientChanges(
            name=maybe(input.name),
            redirect_uris=maybe(input.redirect_uris),
            allowed_scopes=maybe(input.allowed_scopes),
            post_logout_redirect_uris=maybe(input.post_logout_redirect_uris),
        )
        async with info.context.unit_of_work() as uow:
            client = await info.context.container.oauth_clients.update(
                uow, principal, parse_id(id, "OAuth client"), changes
            )
        return UpdateOAuthClientSuccess(client=OAuthClient.from_row(client))

    @mutation(
        "A new secret for a confidential client; the old one stops at once.",
        WRITE,
        name="rotateOAuthClientSecret",
    )
    async def rotate_oauth_client_secret(
        self, info: GraphQLInfo, id: strawberry.ID
    ) -> RotateOAuthClientSecretResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            client, secret = await info.context.container.oauth_clients.rotate_secret(
                uow, principal, parse_id(id, "OAuth client")
            )
        return RotateOAuthClientSecretSuccess(
            client=OAuthClient.from_row(client), client_secret=secret
        )

    @mutation("Delete a client with its grants and consents.", WRITE, name="deleteOAuthClient")
    async def delete_oauth_client(
        self, info: GraphQLInfo, id: strawberry.ID
    ) -> DeleteOAuthClientResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.oauth_clients.delete(
                uow, principal, parse_id(id, "OAuth client")
            )
        return DeleteOAuthClientSuccess(message="OAuth client deleted.")

    @mutation(
        "Forget your consent to a client and end its grants (it asks again next time).",
        IsAuthenticated(),
    )
    async def revoke_consent(self, info: GraphQLInfo, client_id: str) -> RevokeConsentResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            ended = await info.context.container.oauth_clients.revoke_consent(
                uow, principal, client_id
            )
        grants = f"{ended} grant{'' if ended == 1 else 's'}"
        return RevokeConsentSuccess(message=f"Consent revoked; {grants} ended.")
