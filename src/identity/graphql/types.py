"""The object types clients read. Trivial fields are plain attributes (resolved synchronously)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from identity.db import models
from identity.graphql.context import Context
from identity.graphql.dataloaders import Loaders
from identity.graphql.external import ExternalAccount
from identity.graphql.factors import Factor
from identity.graphql.permissions import AnyOf, HasPermission, IsSelf, requires
from identity.repositories.audit import AuditQuery
from identity.repositories.users import UserQuery

# Resolvers answer from what the request knows when they can, synchronously (graphql-core's
# async path costs more than such a field); otherwise they return one of these awaitables,
# which graphql-core awaits.


async def _roles_later(loaders: Loaders, user_id: uuid.UUID) -> list[Role]:
    return [Role.from_row(row) for row in await loaders.roles_by_user.load(user_id)]


async def _permissions_later(loaders: Loaders, role_id: uuid.UUID) -> list[Permission]:
    return [Permission.from_row(row) for row in await loaders.permissions_by_role.load(role_id)]


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
    requires_mfa: bool = strawberry.field(
        description="Its permissions are granted only in sessions signed in with a second "
        "factor (aal 2); at aal 1 fields needing them answer MFA_REQUIRED."
    )
    role_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    def permissions(self, info: Info[Context, None]) -> list[Permission]:
        loaders = info.context.loaders
        known = loaders.known_role_permissions.get(self.role_id)
        if known is not None:  # answered without a query, and without the async path
            return [Permission.from_row(row) for row in known]
        return _permissions_later(loaders, self.role_id)  # type: ignore[return-value]

    @classmethod
    def from_row(cls, row: models.Role) -> Role:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            is_system=row.is_system,
            requires_mfa=row.requires_mfa,
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
    app_metadata: JSON = strawberry.field(
        description="Set by admins (updateUser); access tokens carry it as `app_metadata`."
    )
    user_metadata: JSON = strawberry.field(
        description="Set by the user (updateMe); never in tokens."
    )
    user_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The roles this user holds, by name.")
    def roles(self, info: Info[Context, None]) -> list[Role]:
        loaders = info.context.loaders
        known = loaders.known_roles.get(self.user_id)
        if known is not None:  # answered without a query, and without the async path
            return [Role.from_row(row) for row in known]
        return _roles_later(loaders, self.user_id)  # type: ignore[return-value]

    @strawberry.field(
        description="Every permission granted by this user's roles, sorted. For the caller "
        "(`me`), those of roles that require MFA only in a session at aal 2."
    )
    def permissions(self, info: Info[Context, None]) -> list[str]:
        loaders = info.context.loaders
        known = loaders.known_permissions.get(self.user_id)
        if known is not None:
            return known
        return loaders.permissions_by_user.load(self.user_id)  # type: ignore[return-value]

    @strawberry.field(
        **requires(
            AnyOf(IsSelf(), HasPermission("users:read")), "The user's live sessions, newest first."
        )
    )
    async def sessions(self, info: Info[Context, None]) -> list[Session]:
        principal = await info.context.require_principal()
        rows = await info.context.loaders.sessions_by_user.load(self.user_id)
        return [Session.from_row(row, principal.session_id) for row in rows]

    @strawberry.field(
        **requires(
            AnyOf(IsSelf(), HasPermission("users:read")),
            "Second factors (authenticator apps, passkeys), oldest first; never their secrets.",
        )
    )
    async def factors(self, info: Info[Context, None]) -> list[Factor]:
        rows = await info.context.loaders.factors_by_user.load(self.user_id)
        return [Factor.from_row(row) for row in rows]

    @strawberry.field(
        **requires(
            AnyOf(IsSelf(), HasPermission("users:read")),
            "MFA is on: the user has at least one second factor.",
        )
    )
    async def mfa_enabled(self, info: Info[Context, None]) -> bool:
        return bool(await info.context.loaders.factors_by_user.load(self.user_id))

    @strawberry.field(
        **requires(
            AnyOf(IsSelf(), HasPermission("users:read")), "Unused recovery codes (0 with MFA off)."
        )
    )
    async def recovery_codes_left(self, info: Info[Context, None]) -> int:
        left: int = await info.context.loaders.recovery_codes_left.load(self.user_id)
        return left

    @strawberry.field(
        **requires(
            AnyOf(IsSelf(), HasPermission("users:read")),
            "Accounts at other providers that sign in to this user, oldest first.",
        )
    )
    async def external_accounts(self, info: Info[Context, None]) -> list[ExternalAccount]:
        rows = await info.context.loaders.external_accounts_by_user.load(self.user_id)
        return [ExternalAccount.from_row(row) for row in rows]

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
            app_metadata=row.app_metadata or {},  # type: ignore[arg-type]  # JSON is Any at runtime
            user_metadata=row.user_metadata or {},  # type: ignore[arg-type]
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


@strawberry.type(description="A signed-in device; ending it ends its tokens at once.")
class Session:
    id: strawberry.ID
    created_at: datetime
    last_used_at: datetime = strawberry.field(
        description="When it last signed in or refreshed its tokens."
    )
    expires_at: datetime
    user_agent: str | None
    ip_address: str | None
    current: bool = strawberry.field(description="This is the session of the caller's token.")
    aal: int = strawberry.field(
        description="Assurance level (NIST SP 800-63B): 1 one factor, 2 two factors or a passkey."
    )
    amr: list[str] = strawberry.field(
        description="How it signed in (RFC 8176): pwd, otp, hwk, user, mfa, fed."
    )

    @classmethod
    def from_row(cls, row: models.Session, current_session: uuid.UUID | None) -> Session:
        return cls(
            id=strawberry.ID(str(row.id)),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            user_agent=row.user_agent,
            ip_address=row.ip_address,
            current=row.id == current_session,
            aal=row.aal,
            amr=list(row.amr),
        )


@strawberry.type(description="Something that happened, as the audit log recorded it.")
class AuditEvent:
    id: strawberry.ID
    occurred_at: datetime
    action: str
    actor_id: strawberry.ID | None = strawberry.field(
        description="Who did it (kept after deletion)."
    )
    subject_id: strawberry.ID | None = strawberry.field(description="Whom it concerned.")
    ip_address: str | None
    user_agent: str | None
    details: JSON

    @classmethod
    def from_row(cls, row: models.AuditEvent) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(row.id)),
            occurred_at=row.occurred_at,
            action=row.action,
            actor_id=strawberry.ID(str(row.actor_id)) if row.actor_id else None,
            subject_id=strawberry.ID(str(row.subject_id)) if row.subject_id else None,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            details=row.details,  # type: ignore[arg-type]  # JSON is an alias of Any at runtime
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    query: strawberry.Private[UserQuery]

    @strawberry.field(description="How many users match the filter (counted only when asked).")
    async def total_count(self, info: Info[Context, None]) -> int:
        async with info.context.container.reading() as uow:
            return await uow.users.count(self.query)


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo
    query: strawberry.Private[AuditQuery]

    @strawberry.field(description="How many events match the filter (counted only when asked).")
    async def total_count(self, info: Info[Context, None]) -> int:
        async with info.context.container.reading() as uow:
            return await uow.audit_events.count(self.query)
