"""Signing-key life cycle: the first key, two-phase rotation, revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from identity.security.derive import Unsealable
from identity.security.jwt import KeyState, StoredKey, generate_key
from identity.services.runtime import Runtime
from identity.services.secrets import SecretMismatch
from identity.services.uow import UnitOfWork

_LOCK = "signing-keys"
ID_TOKEN_ALGORITHM = "RS256"  # OpenID Connect's one mandatory algorithm, whatever ours is


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
        """At first start, create a key that signs at once (no cache can hold an older JWKS);
        and, with another IDENTITY_JWT_ALGORITHM, an RS256 key for ID tokens."""
        await uow.locks.hold(_LOCK)
        self._load(await uow.keys.all())
        now = self.rt.clock.now()
        made: list[str] = []
        if not self.rt.keyring.has_signer(now):
            made.append(self._add(uow, activate_in=0, note="first key"))
        first_is_rs256 = made and self.rt.settings.jwt_algorithm == ID_TOKEN_ALGORITHM
        if not first_is_rs256 and not self._signs(ID_TOKEN_ALGORITHM, now):
            made.append(
                self._add(uow, activate_in=0, note="ID tokens", algorithm=ID_TOKEN_ALGORITHM)
            )
        if not made:
            await uow.release()
            return None
        for kid in made:
            uow.audit.record("keys.created", kid=kid)
        await uow.commit()
        await self.reload(uow)
        return made[0]

    def _signs(self, algorithm: str, now: datetime) -> bool:
        """Does a key of this algorithm sign now?"""
        states = self.rt.keyring.states(now)
        return any(s.algorithm == algorithm and s.state == "active" for s in states)

    async def rotate(
        self, uow: UnitOfWork, *, activate_in: int | None = None, algorithm: str | None = None
    ) -> str:
        """Publish a new key now; it starts signing once JWKS caches have seen it.

        The key it replaces stays published until the last token it signed has expired.
        """
        await uow.locks.hold(_LOCK)
        delay = self.rt.settings.jwks_max_age if activate_in is None else activate_in
        kid = self._add(uow, activate_in=delay, note="rotation", algorithm=algorithm)
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
        signing = [s for s in self.rt.keyring.states(now) if s.kid == kid and s.state == "active"]
        revoked = await uow.keys.revoke(kid, now)
        self._load(await uow.keys.all())
        replacement = None
        if signing or not self.rt.keyring.has_signer(now):
            algorithm = signing[0].algorithm if signing else None
            replacement = self._add(
                uow, activate_in=0, note=f"replaces revoked {kid}", algorithm=algorithm
            )
        uow.audit.record("keys.revoked", kid=kid, revoked=revoked, replacement=replacement)
        await uow.commit()
        await self.reload(uow)
        return Revocation(revoked=revoked, replacement=replacement)

    async def states(self, uow: UnitOfWork) -> list[KeyState]:
        await self.reload(uow)
        return self.rt.keyring.states(self.rt.clock.now())

    def _add(
        self, uow: UnitOfWork, *, activate_in: int, note: str, algorithm: str | None = None
    ) -> str:
        now = self.rt.clock.now()
        key = generate_key(algorithm or self.rt.settings.jwt_algorithm, self.rt.secret)
        uow.keys.add(
            key, created_at=now, activates_at=now + timedelta(seconds=activate_in), note=note
        )
        return key.kid
