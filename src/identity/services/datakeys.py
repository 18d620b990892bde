"""The data key: random, stored sealed under the server secret, read once per process.

HMACs that must outlive a rotation of the server secret (recovery codes, OAuth client
secrets) are keyed by it: `identity secret reencrypt` re-seals the key, and every HMAC made
with it stays valid. Start-up makes the key if no instance has (under a lock); use cases
read it through a read session of their own, so they never wait on their own transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from identity.security.derive import DATA_KEY_PURPOSE
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

SEAL_PURPOSE = DATA_KEY_PURPOSE
PRIMARY = "primary"


class DataKeys:
    def __init__(
        self,
        rt: Runtime,
        reading: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
        unit_of_work: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
    ) -> None:
        self.rt = rt
        self.reading = reading
        self.unit_of_work = unit_of_work  # a transaction of its own, not the caller's
        self._keys: dict[str, bytes] = {}

    async def ensure(self, name: str = PRIMARY) -> None:
        """Make the key if it does not exist yet (start-up; safe in every instance at once)."""
        await self.key(name, create=True)

    async def mac(self, purpose: str, data: bytes) -> bytes:
        key = await self.key(PRIMARY)
        return hmac.new(key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    async def key(self, name: str, *, create: bool = False) -> bytes:
        known = self._keys.get(name)
        if known is None:
            known = self._keys[name] = await self._load(name, create)
        return known

    async def _load(self, name: str, create: bool) -> bytes:
        async with self.reading() as uow:
            sealed = await uow.data_keys.get(name)
        if sealed is None and not create:
            raise RuntimeError(f"the data key {name!r} is missing: start a server once")
        if sealed is None:
            sealed = await self._create(name)
        return self.rt.secret.unseal(SEAL_PURPOSE, sealed, name.encode())

    async def _create(self, name: str) -> bytes:
        async with self.unit_of_work() as uow:
            sealed = await uow.data_keys.get(name)
            if sealed is None:
                await uow.locks.hold(f"data-key:{name}")
                sealed = await uow.data_keys.get(name)  # made meanwhile by another instance?
            if sealed is None:
                sealed = self.rt.secret.seal(SEAL_PURPOSE, os.urandom(32), name.encode())
                uow.data_keys.add(name, sealed, self.rt.clock.now())
                await uow.commit()
        return sealed
