"""Who is calling: the signed-in user, the session their token belongs to, what they may do."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from identity.db.models import Permission, Role, User

if TYPE_CHECKING:
    from identity.services.uow import UnitOfWork

PASSWORD = "pwd"
OTP = "otp"
HARDWARE_KEY = "hwk"
USER_PRESENCE = "user"  # RFC 8176: user presence or verification (a passkey with UV)
MULTIPLE = "mfa"
FEDERATED = "fed"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None = None
    user_agent: str | None = None
    # The checked DPoP proof of a request that issues tokens: the session is bound to its key.
    dpop: ProofOfKey | None = None

    @property
    def dpop_jkt(self) -> str | None:
        return None if self.dpop is None else self.dpop.jkt


class ProofOfKey(Protocol):
    """A request's DPoP proof, checked but not yet spent: the use case spends it (records its
    single use, ProofReplayed if it was used before) once the credentials are proven."""

    @property
    def jkt(self) -> str: ...

    async def spend(self, uow: UnitOfWork) -> None: ...


@dataclass(frozen=True, slots=True)
class Assurance:
    """How a session signed in: NIST SP 800-63B level (1 or 2) and RFC 8176 methods."""

    aal: int
    amr: tuple[str, ...]

    @classmethod
    def of(cls, methods: Iterable[str]) -> Assurance:
        """The level of these methods: two factors, or a passkey with user verification, is 2."""
        amr = tuple(dict.fromkeys(methods))
        factors = {PASSWORD, FEDERATED} & set(amr), {OTP, HARDWARE_KEY} & set(amr)
        two = bool(factors[0] and factors[1])
        passkey = HARDWARE_KEY in amr and USER_PRESENCE in amr
        if two and MULTIPLE not in amr:
            amr = (*amr, MULTIPLE)
        return cls(aal=2 if two or passkey else 1, amr=amr)

    def adding(self, *methods: str) -> Assurance:
        return Assurance.of((*self.amr, *methods))


PASSWORD_ONLY = Assurance(aal=1, amr=(PASSWORD,))


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session_id: uuid.UUID
    roles: list[Role]
    role_permissions: dict[uuid.UUID, list[Permission]]
    permissions: frozenset[str] = field(default=frozenset())
    # Held through roles that require MFA, and not granted in this session (aal 1).
    withheld: frozenset[str] = field(default=frozenset())
    assurance: Assurance = PASSWORD_ONLY
    authenticated_at: datetime | None = None

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    def has(self, permission: str) -> bool:
        return permission in self.permissions


def granted_roles(roles: Iterable[Role], aal: int) -> list[Role]:
    """The roles that grant their permissions at this level (those requiring MFA need 2)."""
    return [role for role in roles if aal >= 2 or not role.requires_mfa]


def grants(
    roles: list[Role], role_permissions: dict[uuid.UUID, list[Permission]], aal: int
) -> tuple[frozenset[str], frozenset[str]]:
    """(granted, withheld): the permissions of the roles granted at this level, and those
    held only through roles that need a second factor."""

    def codes(of: Iterable[Role]) -> frozenset[str]:
        return frozenset(p.code for r in of for p in role_permissions.get(r.id, []))

    granted = codes(granted_roles(roles, aal))
    return granted, codes(roles) - granted
