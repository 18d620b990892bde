"""Per-request DataLoaders: one query per batch, whatever the number of parents.

Each batch opens its own short session: sibling fields resolve concurrently and one
AsyncSession cannot serve two statements at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from identity.clock import Clock
from identity.db.models import ExternalAccount, Factor, Permission, Role, Session
from identity.repositories.external_accounts import ExternalAccountRepository
from identity.repositories.factors import FactorRepository, RecoveryCodeRepository
from identity.repositories.roles import RoleRepository
from identity.repositories.sessions import SessionRepository


class Loaders:
    def __init__(self, reads: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._reads = reads
        self._clock = clock
        # What the request already knows (the caller's roles and permissions, read with the
        # principal): resolvers answer from here synchronously, without a loader.
        self.known_roles: dict[uuid.UUID, list[Role]] = {}
        self.known_permissions: dict[uuid.UUID, list[str]] = {}
        self.known_role_permissions: dict[uuid.UUID, list[Permission]] = {}

    def forget(self) -> None:
        """After a change to roles: what this request knew or loaded may be stale."""
        for known in (self.known_roles, self.known_permissions, self.known_role_permissions):
            known.clear()
        for name in ("roles_by_user", "permissions_by_role", "permissions_by_user"):
            self.__dict__.pop(name, None)

    # Each loader is made on first use: most requests need none of them.

    @cached_property
    def roles_by_user(self) -> DataLoader[uuid.UUID, list[Role]]:
        return DataLoader(load_fn=self._roles_by_user)

    @cached_property
    def permissions_by_role(self) -> DataLoader[uuid.UUID, list[Permission]]:
        return DataLoader(load_fn=self._permissions_by_role)

    @cached_property
    def permissions_by_user(self) -> DataLoader[uuid.UUID, list[str]]:
        return DataLoader(load_fn=self._permissions_by_user)

    @cached_property
    def sessions_by_user(self) -> DataLoader[uuid.UUID, list[Session]]:
        return DataLoader(load_fn=self._sessions_by_user)

    @cached_property
    def factors_by_user(self) -> DataLoader[uuid.UUID, list[Factor]]:
        return DataLoader(load_fn=self._factors_by_user)

    @cached_property
    def recovery_codes_left(self) -> DataLoader[uuid.UUID, int]:
        return DataLoader(load_fn=self._recovery_codes_left)

    @cached_property
    def external_accounts_by_user(self) -> DataLoader[uuid.UUID, list[ExternalAccount]]:
        return DataLoader(load_fn=self._external_accounts_by_user)

    def forget_external_accounts(self) -> None:
        self.__dict__.pop("external_accounts_by_user", None)

    def forget_factors(self) -> None:
        """After a change to factors: what this request loaded may be stale."""
        for name in ("factors_by_user", "recovery_codes_left"):
            self.__dict__.pop(name, None)

    async def _roles_by_user(self, user_ids: Sequence[uuid.UUID]) -> list[list[Role]]:
        async with self._reads() as db:
            found = await RoleRepository(db).roles_of_users(user_ids)
        return [found.get(user_id, []) for user_id in user_ids]

    async def _permissions_by_role(self, role_ids: Sequence[uuid.UUID]) -> list[list[Permission]]:
        async with self._reads() as db:
            found = await RoleRepository(db).permissions_of_roles(role_ids)
        return [found.get(role_id, []) for role_id in role_ids]

    async def _permissions_by_user(self, user_ids: Sequence[uuid.UUID]) -> list[list[str]]:
        async with self._reads() as db:
            found = await RoleRepository(db).permission_codes_of_users(user_ids)
        return [found.get(user_id, []) for user_id in user_ids]

    async def _sessions_by_user(self, user_ids: Sequence[uuid.UUID]) -> list[list[Session]]:
        async with self._reads() as db:
            found = await SessionRepository(db).live_of_users(user_ids, self._clock.now())
        return [found.get(user_id, []) for user_id in user_ids]

    async def _factors_by_user(self, user_ids: Sequence[uuid.UUID]) -> list[list[Factor]]:
        async with self._reads() as db:
            found = await FactorRepository(db).of_users(user_ids)
        return [found.get(user_id, []) for user_id in user_ids]

    async def _external_accounts_by_user(
        self, user_ids: Sequence[uuid.UUID]
    ) -> list[list[ExternalAccount]]:
        async with self._reads() as db:
            found = await ExternalAccountRepository(db).of_users(user_ids)
        return [found.get(user_id, []) for user_id in user_ids]

    async def _recovery_codes_left(self, user_ids: Sequence[uuid.UUID]) -> list[int]:
        async with self._reads() as db:
            found = await RecoveryCodeRepository(db).left_of_users(user_ids)
        return [found.get(user_id, 0) for user_id in user_ids]
