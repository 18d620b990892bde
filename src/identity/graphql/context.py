"""The per-request context: built once per request, everything in it resolved lazily."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info

from identity.container import Container
from identity.graphql.dataloaders import Loaders
from identity.services.auth import Unauthenticated
from identity.services.principal import ClientInfo, Principal
from identity.services.uow import UnitOfWork


def unauthenticated(message: str = "Sign in first: no usable access token.") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "UNAUTHENTICATED"})


class Context:
    def __init__(self, request: Request, response: Response, container: Container) -> None:
        self.request = request
        self.response = response
        self.container = container
        self._principal: asyncio.Future[Principal | None] | None = None
        # For the access log and metrics: the error type a mutation answered with, if any.
        self.outcome: str | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The request's state, shared with the middleware (request id, log fields)."""
        state: dict[str, Any] = self.request.scope.setdefault("state", {})
        return state

    @property
    def request_id(self) -> str | None:
        value = self.state.get("request_id")
        return value if isinstance(value, str) else None

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.container.reads, self.container.runtime.clock)

    @cached_property
    def client(self) -> ClientInfo:
        return ClientInfo(
            ip_address=self.state.get("client_ip"),
            user_agent=self.request.headers.get("user-agent"),
        )

    def bearer_token(self) -> str | None:
        header = self.request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("The Authorization header must be `Bearer <access token>`.")
        return token.strip()

    async def principal(self) -> Principal | None:
        """The caller, or None without a token; UNAUTHENTICATED for an unusable token."""
        if self._principal is not None:  # loaded, or being loaded for a sibling field
            return await self._principal
        # The first caller loads it itself (no task); concurrent callers await the future.
        future = self._principal = asyncio.get_running_loop().create_future()
        try:
            principal = await self._load_principal()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: this caller raises it; later ones get it too
            raise
        future.set_result(principal)
        return principal

    async def principal_if_any(self) -> Principal | None:
        """The caller if their token works; None otherwise (for operations open to all)."""
        try:
            return await self.principal()
        except GraphQLError:
            return None

    async def require_principal(self) -> Principal:
        principal = await self.principal()
        if principal is None:
            raise unauthenticated()
        return principal

    async def _load_principal(self) -> Principal | None:
        token = self.bearer_token()
        if token is None:
            return None
        try:
            principal = await self.container.auth.authenticate(token)
        except Unauthenticated:
            raise unauthenticated("The access token is invalid, expired or revoked.") from None
        self.state["user_id"] = str(principal.user_id)
        loaders = self.loaders
        loaders.known_roles[principal.user_id] = principal.roles
        loaders.known_permissions[principal.user_id] = sorted(principal.permissions)
        for role in principal.roles:
            loaders.known_role_permissions[role.id] = principal.role_permissions.get(role.id, [])
        return principal

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        async with self.container.unit_of_work(self.client) as uow:
            yield uow


GraphQLInfo = Info[Context, None]
