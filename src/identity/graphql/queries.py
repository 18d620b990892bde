"""Query resolvers: each opens its own short read session (sibling fields run concurrently)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import strawberry

from identity.graphql.clients import ClientQueries
from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import bad_user_input
from identity.graphql.external import ExternalProvider
from identity.graphql.permissions import HasPermission, requires
from identity.graphql.types import (
    AuditEvent,
    AuditEventConnection,
    AuditEventEdge,
    PageInfo,
    Permission,
    Role,
    User,
    UserConnection,
    UserEdge,
)
from identity.graphql.webhooks import WebhookQueries
from identity.repositories.audit import AuditQuery
from identity.repositories.users import UserQuery
from identity.services.paging import InvalidPage


@strawberry.input(description="All given conditions must hold.")
class UserFilter:
    search: str | None = strawberry.field(
        default=None, description="Part of the email or name, any case."
    )
    role: str | None = strawberry.field(default=None, description="Holds the role of this name.")
    is_active: bool | None = None
    is_verified: bool | None = None


@strawberry.input(description="All given conditions must hold.")
class AuditFilter:
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user did it or it concerned them."
    )
    action: str | None = None
    since: datetime | None = strawberry.field(default=None, description="Inclusive.")
    until: datetime | None = strawberry.field(default=None, description="Exclusive.")


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@strawberry.type
class Query(WebhookQueries, ClientQueries):
    @strawberry.field(description="The signed-in user; null without a token.")
    async def me(self, info: GraphQLInfo) -> User | None:
        principal = await info.context.principal()
        return None if principal is None else User.from_row(principal.user)

    @strawberry.field(description="The providers people may sign in with; no sign-in needed.")
    def external_providers(self, info: GraphQLInfo) -> list[ExternalProvider]:
        providers = info.context.container.providers.listed()
        return [ExternalProvider(id=p.id, name=p.name) for p in providers]

    @strawberry.field(**requires(HasPermission("users:read"), "A user; null for an unknown id."))
    async def user(self, info: GraphQLInfo, id: strawberry.ID) -> User | None:
        user_id = _uuid(id)
        if user_id is None:
            return None
        async with info.context.container.reading() as uow:
            row = await uow.users.get(user_id)
        return None if row is None else User.from_row(row)

    @strawberry.field(
        **requires(
            HasPermission("users:read"),
            "Users, oldest first, `first` (1 to 100) at a time after the cursor `after`.",
        )
    )
    async def users(
        self,
        info: GraphQLInfo,
        first: int | None = 20,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> UserConnection:
        query = UserQuery(
            search=filter.search if filter else None,
            role=filter.role if filter else None,
            is_active=filter.is_active if filter else None,
            is_verified=filter.is_verified if filter else None,
        )
        admin = info.context.container.admin
        try:
            async with info.context.container.reading() as uow:
                page = await admin.users(uow, query, 20 if first is None else first, after)
        except InvalidPage as exc:
            raise bad_user_input(exc.message) from None
        edges = [UserEdge(cursor=admin.user_cursor(u), node=User.from_row(u)) for u in page.items]
        return UserConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
            query=query,
        )

    @strawberry.field(**requires(HasPermission("roles:read"), "Every role, by name."))
    async def roles(self, info: GraphQLInfo) -> list[Role]:
        async with info.context.container.reading() as uow:
            return [Role.from_row(row) for row in await uow.roles.all()]

    @strawberry.field(**requires(HasPermission("roles:read"), "A role; null for an unknown id."))
    async def role(self, info: GraphQLInfo, id: strawberry.ID) -> Role | None:
        role_id = _uuid(id)
        if role_id is None:
            return None
        async with info.context.container.reading() as uow:
            row = await uow.roles.get(role_id)
        return None if row is None else Role.from_row(row)

    @strawberry.field(**requires(HasPermission("roles:read"), "The permission catalogue."))
    async def permissions(self, info: GraphQLInfo) -> list[Permission]:
        async with info.context.container.reading() as uow:
            return [Permission.from_row(row) for row in await uow.roles.catalogue()]

    @strawberry.field(
        **requires(
            HasPermission("audit:read"),
            "The audit log, newest first, `first` (1 to 100) at a time after `after`.",
        )
    )
    async def audit_events(
        self,
        info: GraphQLInfo,
        first: int | None = 50,
        after: str | None = None,
        filter: AuditFilter | None = None,
    ) -> AuditEventConnection:
        user_id = None
        if filter is not None and filter.user_id is not None:
            user_id = _uuid(filter.user_id)
            if user_id is None:
                raise bad_user_input("`filter.userId` is not a valid id.")
        query = AuditQuery(
            user_id=user_id,
            action=filter.action if filter else None,
            since=_utc(filter.since) if filter else None,
            until=_utc(filter.until) if filter else None,
        )
        admin = info.context.container.admin
        try:
            async with info.context.container.reading() as uow:
                page = await admin.audit_events(uow, query, 50 if first is None else first, after)
        except InvalidPage as exc:
            raise bad_user_input(exc.message) from None
        edges = [
            AuditEventEdge(cursor=admin.audit_cursor(e), node=AuditEvent.from_row(e))
            for e in page.items
        ]
        return AuditEventConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
            query=query,
        )
