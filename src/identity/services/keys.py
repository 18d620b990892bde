"""Signing-key life cycle: the first key, two-phase rotation, revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from identity.security.derive import Unsealable
from identity.security.jwt import KeyState, StoredKey, generate_key
from identity.services.runtime import Runtime
from identity.services.secrets import SecretMismatch
from identity.services.uow import UnitOfWork

_LOCK = "signing-keys"


@dataclass(frozen=True, slots=True)
class Revocation:
    revoked: bool
    replacement: str | None


class Keys:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def reload(self, uow: UnitOfWork) -> None:
        self._load(await uow.keys.all())
        await uow.release()

    def _load(self, stored: list[StoredKey]) -> None:
        try:
            self.rt.keyring.load(stored)
        except Unsealable as exc:
            raise SecretMismatch.of(str(exc)) from None

    async def ensure_signer(self, uow: UnitOfWork) -> str | None:
        """At first start, create a key that signs at once (no cache can hold an older JWKS)."""
        await uow.locks.hold(_LOCK)
        self._load(await uow.keys.all())
        now = self.rt.clock.now()
        if self.rt.keyring.has_signer(now):
            await uow.release()
            return None
        kid = self._add(uow, activate_in=0, note="first key")
        uow.audit.record("keys.created", kid=kid)
        await uow.commit()
        await self.reload(uow)
        return kid

    async def rotate(self, uow: UnitOfWork, *, activate_in: int | None = None) -> str:
        """Publish a new key now; it starts signing once JWKS caches have seen it.

        The key it replaces stays published until the last token it signed has expired.
        """
        await uow.locks.hold(_LOCK)
        delay = self.rt.settings.jwks_max_age if activate_in is None else activate_in
        kid = self._add(uow, activate_in=delay, note="rotation")
        uow.audit.record("keys.rotated", kid=kid, activates_in=delay)
        await uow.commit()
        await self.reload(uow)
        return kid

    async def revoke(self, uow: UnitOfWork, kid: str) -> Revocation:
        """Drop a key at once; tokens it signed stop working.

        A revoked signer is replaced by a new key, never by the older key it had replaced:
        whoever revokes the signing key has reason to distrust it, and may have rotated away
        from the older one for the same reason.
        """
        await uow.locks.hold(_LOCK)
        now = self.rt.clock.now()
        self._load(await uow.keys.all())
        was_signing = any(s.kid == kid and s.state == "active" for s in self.rt.keyring.states(now))
        revoked = await uow.keys.revoke(kid, now)
        self._load(await uow.keys.all())
        replacement = None
        if was_signing or not self.rt.keyring.has_signer(now):
            replacement = self._add(uow, activate_in=0, note=f"replaces revoked {kid}")
        uow.audit.record("keys.revoked", kid=kid, revoked=revoked, replacement=replacement)
        await uow.commit()
        await self.reload(uow)
        return Revocation(revoked=revoked, replacement=replacement)

    async def states(self, uow: UnitOfWork) -> list[KeyState]:
        await self.reload(uow)
        return self.rt.keyring.states(self.rt.clock.now())

    def _add(self, uow: UnitOfWork, *, activate_in: int, note: str) -> str:
        now = self.rt.clock.now()
        key = generate_key(self.rt.settings.jwt_algorithm, self.rt.secret)
        uow.keys.add(
            key, created_at=now, activates_at=now + timedelta(seconds=activate_in), note=note
        )
        return key.kid
