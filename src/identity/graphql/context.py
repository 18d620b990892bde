"""The per-request context: built once per request, everything in it resolved lazily."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import cached_property
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info

from identity.container import Container
from identity.graphql.dataloaders import Loaders
from identity.security.dpop import InvalidProof
from identity.services.auth import Unauthenticated
from identity.services.dpop import HEADER as DPOP_HEADER
from identity.services.principal import ClientInfo, Principal, ProofOfKey
from identity.services.uow import UnitOfWork


def unauthenticated(message: str = "Sign in first: no usable access token.") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "UNAUTHENTICATED"})


def invalid_dpop_proof(reason: str) -> GraphQLError:
    return GraphQLError(
        f"The DPoP proof is not usable: {reason}.", extensions={"code": "INVALID_DPOP_PROOF"}
    )


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

    def access_token(self) -> tuple[str, str] | None:
        """(scheme, token) from the Authorization header: `bearer` or `dpop`."""
        header = self.request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not token.strip():
            raise unauthenticated(
                "The Authorization header must be `Bearer <access token>` or `DPoP <access "
                "token>` with a DPoP proof."
            )
        return scheme.lower(), token.strip()

    def _proofs(self) -> list[str]:
        return self.request.headers.getlist(DPOP_HEADER)

    def key_proof(self, *, required: bool = False) -> ProofOfKey | None:
        """The request's DPoP proof, checked but not yet spent (the use case spends it once
        the credentials are proven); None without one, unless `required`;
        INVALID_DPOP_PROOF for a proof that fails."""
        proofs = self._proofs()
        if not proofs and not required:
            return None
        dpop = self.container.dpop
        try:
            if not proofs:
                raise InvalidProof("a DPoP proof is required")
            proof = dpop.verify(proofs, method=self.request.method, url=dpop.graphql_url)
        except InvalidProof as exc:
            raise invalid_dpop_proof(str(exc)) from None
        return dpop.binding(proof)

    def issuing_client(self) -> ClientInfo:
        """The client of a request that issues tokens, with its DPoP proof (the new session
        is bound to its key); INVALID_DPOP_PROOF for a proof that fails."""
        proof = self.key_proof(required=self.container.dpop.required)
        if proof is None:
            return self.client
        return replace(self.client, dpop=proof)

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
        given = self.access_token()
        if given is None:
            return None
        scheme, token = given
        dpop, proof = self.container.dpop, None
        try:
            if scheme == "dpop":  # the proof must be by the token's key, for this request
                proof = dpop.verify(
                    self._proofs(),
                    method=self.request.method,
                    url=dpop.graphql_url,
                    access_token=token,
                )
            principal = await self.container.auth.authenticate(
                token, None if proof is None else proof.jkt
            )
            if proof is not None:  # recorded once the token is known good: no junk rows
                await dpop.record(proof)
        except InvalidProof as exc:
            raise unauthenticated(f"The DPoP proof is not usable: {exc}.") from None
        except Unauthenticated:
            raise unauthenticated(
                "The access token is invalid, expired or revoked, or bound to a DPoP key this "
                "request did not prove."
            ) from None
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
