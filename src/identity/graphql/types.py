"""The object types clients read. Trivial fields are plain attributes (resolved synchronously)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types import Info

from identity.db import models
from identity.graphql.context import Context


@strawberry.type(description="A permission a role can grant, named `area:action`.")
class Permission:
    code: str
    description: str

    @classmethod
    def from_row(cls, row: models.Permission) -> Permission:
        return cls(code=row.code, description=row.description)


@strawberry.type(
    description="A named set of permissions. System roles cannot be renamed or deleted."
)
class Role:
    id: strawberry.ID
    name: str
    description: str
    is_system: bool
    role_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def permissions(self, info: Info[Context, None]) -> list[Permission]:
        rows = await info.context.loaders.permissions_by_role.load(self.role_id)
        return [Permission.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: models.Role) -> Role:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            is_system=row.is_system,
            role_id=row.id,
        )


@strawberry.type(description="A person with an account.")
class User:
    id: strawberry.ID
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_verified: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    user_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The roles this user holds, by name.")
    async def roles(self, info: Info[Context, None]) -> list[Role]:
        rows = await info.context.loaders.roles_by_user.load(self.user_id)
        return [Role.from_row(row) for row in rows]

    @strawberry.field(description="Every permission granted by this user's roles, sorted.")
    async def permissions(self, info: Info[Context, None]) -> list[str]:
        loaders = info.context.loaders
        roles = await loaders.roles_by_user.load(self.user_id)
        granted = await loaders.permissions_by_role.load_many([role.id for role in roles])
        return sorted({permission.code for permissions in granted for permission in permissions})

    @classmethod
    def from_row(cls, row: models.User) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            is_active=row.is_active,
            is_verified=row.is_verified,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_login_at=row.last_login_at,
            user_id=row.id,
        )


@strawberry.type(description="Tokens for a signed-in session.")
class AuthPayload:
    access_token: str
    token_type: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User
    refresh_token: str | None = strawberry.field(
        description="Null in cookie mode: the refresh token then travels only as a cookie."
    )
