"""Query resolvers."""

from __future__ import annotations

import strawberry

from identity.graphql.context import GraphQLInfo
from identity.graphql.types import User


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user; null without a token.")
    async def me(self, info: GraphQLInfo) -> User | None:
        principal = await info.context.principal()
        return None if principal is None else User.from_row(principal.user)
