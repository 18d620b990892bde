"""Everything a process builds once: the engine, the session factories and the use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from identity.clock import Clock, SystemClock
from identity.config import Settings
from identity.db.engine import create_engine, create_sessionmaker
from identity.services.accounts import Accounts
from identity.services.admin import Admin
from identity.services.auth import Auth
from identity.services.keys import Keys
from identity.services.runtime import Runtime
from identity.services.transfer import Transfer
from identity.services.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Container:
    settings: Settings
    engine: AsyncEngine
    reads: async_sessionmaker[AsyncSession]
    writes: async_sessionmaker[AsyncSession]
    runtime: Runtime
    auth: Auth
    accounts: Accounts
    admin: Admin
    keys: Keys
    transfer: Transfer

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Container:
        engine = create_engine(settings)
        runtime = Runtime.create(settings, clock or SystemClock())
        return cls(
            settings=settings,
            engine=engine,
            reads=create_sessionmaker(engine),
            writes=create_sessionmaker(engine, write=True),
            runtime=runtime,
            auth=Auth(runtime),
            accounts=Accounts(runtime),
            admin=Admin(runtime),
            keys=Keys(runtime),
            transfer=Transfer(runtime),
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A transaction for one use case; rolled back unless the service committed."""
        async with self.writes() as db:
            uow = UnitOfWork(db)
            try:
                yield uow
            finally:
                await uow.rollback()

    async def close(self) -> None:
        self.runtime.hasher.close()
        await self.engine.dispose()
