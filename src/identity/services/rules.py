"""Rules several use cases share: how an account comes to be, and who must stay an admin."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from identity.db.models import User
from identity.services.errors import EmailAlreadyRegistered, LastAdmin
from identity.services.uow import UnitOfWork

ADMIN_ROLE = "admin"
USER_ROLE = "user"
_ADMINS_LOCK = "admins"


async def add_user(
    uow: UnitOfWork,
    now: datetime,
    *,
    email: str,
    first_name: str,
    last_name: str,
    password_hash: str | None,
    is_verified: bool,
) -> User:
    """A new active account (not committed); EmailAlreadyRegistered if the address is taken,
    also by someone who registered it a moment ago (the unique index is the last word)."""
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        first_name=first_name,
        last_name=last_name,
        is_active=True,
        is_verified=is_verified,
        created_at=now,
        updated_at=now,
        password_changed_at=now if password_hash is not None else None,
    )
    uow.users.add(user)
    try:
        await uow.users.flush()
    except IntegrityError:
        await uow.rollback()
        raise EmailAlreadyRegistered() from None
    return user


async def guard_last_admin(uow: UnitOfWork, user: User) -> None:
    """The last active admin cannot lose the role, be deactivated or be deleted."""
    await uow.locks.hold(_ADMINS_LOCK)  # two admins demoting each other at once: one wins
    # Read again under the lock: the row read before it may have changed meanwhile.
    if not await uow.users.is_active(user.id):
        return
    if ADMIN_ROLE not in {r.name for r in await uow.roles.of_user(user.id)}:
        return
    if await uow.users.active_holders_of(ADMIN_ROLE, besides=user.id) == 0:
        raise LastAdmin()
