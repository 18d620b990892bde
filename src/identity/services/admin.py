"""What admins do to other people's accounts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from identity.db.models import User
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class AdminGrant:
    user: User
    created: bool
    granted: bool


class Admin:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def ensure_admin(
        self, uow: UnitOfWork, email: str, password: str | None, first_name: str, last_name: str
    ) -> AdminGrant:
        """Create the user with the admin role, or give an existing user the role. Idempotent."""
        check = Checker()
        email = check.email("email", email)
        first_name = check.name("firstName", first_name)
        last_name = check.name("lastName", last_name)
        check.done()

        role = await uow.roles.by_name(ADMIN_ROLE)
        if role is None:
            raise RuntimeError("the admin role is missing: run `identity migrate`")
        user = await uow.users.by_email(email)
        created = user is None
        if user is None:
            password = check.new_password("password", password)
            check.done()
            await uow.release()
            password_hash = await self.rt.hasher.hash(password)
            now = self.rt.clock.now()
            user = User(
                id=uuid.uuid4(),
                email=email,
                password_hash=password_hash,
                first_name=first_name,
                last_name=last_name,
                is_active=True,
                is_verified=True,  # an operator vouches for the address
                created_at=now,
                updated_at=now,
                password_changed_at=now,
            )
            uow.users.add(user)
            await uow.users.flush()
        granted = await uow.roles.grant(user.id, role.id)
        await uow.commit()
        return AdminGrant(user=user, created=created, granted=granted)
