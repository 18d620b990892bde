"""No permission reaches past itself: what an actor may do to other users and to roles.

A holder of `users:write` could otherwise move an admin's address to their own mailbox, and
a holder of `roles:assign` could give themselves a role with more than they hold.
"""

from __future__ import annotations

import uuid

from identity.db.models import Role, User
from identity.services.errors import MfaRequired, NotFound, PermissionDenied
from identity.services.principal import Principal
from identity.services.uow import UnitOfWork


async def target(uow: UnitOfWork, actor: Principal, user_id: uuid.UUID) -> User:
    """A user the actor may manage: not one with a permission the actor lacks."""
    user = await uow.users.get(user_id)
    if user is None:
        raise NotFound("No user with this id.")
    held = (await uow.roles.permission_codes_of_users([user.id])).get(user.id, [])
    ensure_held(actor, held)
    return user


async def ensure_grantable(uow: UnitOfWork, actor: Principal, role: Role) -> None:
    """Roles are given, taken and edited only by someone who holds all they grant."""
    ensure_held(actor, await uow.roles.permission_codes(role.id))


def ensure_held(actor: Principal, codes: list[str]) -> None:
    missing = sorted(set(codes) - actor.permissions)
    if missing and set(missing) <= actor.withheld:
        raise MfaRequired()
    if missing:
        raise PermissionDenied(
            f"Forbidden: this needs permissions you do not hold: {', '.join(missing)}."
        )
