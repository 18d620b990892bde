"""Who is calling: the signed-in user, the session their token belongs to, what they may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from identity.db.models import Permission, Role, User


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session_id: uuid.UUID
    roles: list[Role]
    role_permissions: dict[uuid.UUID, list[Permission]]
    permissions: frozenset[str] = field(default=frozenset())

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    def has(self, permission: str) -> bool:
        return permission in self.permissions
