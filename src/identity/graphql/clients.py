"""OAuth client types and queries (clients:read)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from identity.db import oauth_models
from identity.graphql.context import GraphQLInfo
from identity.graphql.permissions import HasPermission, requires


@strawberry.type(description="An app that signs its users in with identity (OpenID Connect).")
class OAuthClient:
    id: strawberry.ID
    client_id: str = strawberry.field(description="What the app sends as `client_id`.")
    name: str = strawberry.field(description="Shown to users on the consent page.")
    redirect_uris: list[str] = strawberry.field(description="Matched exactly.")
    is_confidential: bool = strawberry.field(
        description="Has a secret (a server-side app); a public client (SPA, native) has none."
    )
    is_first_party: bool = strawberry.field(description="Signs in without a consent page.")
    allowed_scopes: list[str] = strawberry.field(
        description="Scopes beyond `openid profile email offline_access` it may ask for; "
        "the only ones of its client_credentials tokens."
    )
    post_logout_redirect_uris: list[str] = strawberry.field(
        description="Where `/oauth2/logout` may send the browser back to; matched exactly."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: oauth_models.OAuthClient) -> OAuthClient:
        return cls(
            id=strawberry.ID(str(row.id)),
            client_id=row.client_id,
            name=row.name,
            redirect_uris=list(row.redirect_uris),
            is_confidential=row.is_confidential,
            is_first_party=row.is_first_party,
            allowed_scopes=list(row.allowed_scopes),
            post_logout_redirect_uris=list(row.post_logout_redirect_uris),
            created_at=row.created_at,
        )


@strawberry.type
class ClientQueries:
    @strawberry.field(**requires(HasPermission("clients:read"), "Every registered OAuth client."))
    async def oauth_clients(self, info: GraphQLInfo) -> list[OAuthClient]:
        async with info.context.container.reading() as uow:
            rows = await info.context.container.oauth_clients.all(uow)
        return [OAuthClient.from_row(row) for row in rows]
