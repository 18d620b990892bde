"""A person's own account: register, edit the profile, change the password."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from identity.db.models import User
from identity.services.errors import EmailAlreadyRegistered, InvalidCredentials
from identity.services.fields import UNSET, Maybe
from identity.services.principal import Principal
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

DEFAULT_ROLE = "user"


@dataclass(frozen=True, slots=True)
class Registration:
    email: str
    password: str
    first_name: str
    last_name: str


class Accounts:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def register(self, uow: UnitOfWork, data: Registration) -> User:
        check = Checker()
        email = check.email("email", data.email)
        password = check.new_password("password", data.password)
        first_name = check.name("firstName", data.first_name)
        last_name = check.name("lastName", data.last_name)
        check.done()

        if await uow.users.email_taken(email):
            raise EmailAlreadyRegistered()
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
            is_verified=False,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        uow.users.add(user)
        try:
            await uow.users.flush()
        except IntegrityError:
            # Someone registered the same address while the password was being hashed.
            await uow.rollback()
            raise EmailAlreadyRegistered() from None
        role = await uow.roles.by_name(DEFAULT_ROLE)
        if role is not None:
            await uow.roles.grant(user.id, role.id)
        await uow.commit()
        return user

    async def update_me(
        self, uow: UnitOfWork, principal: Principal, first_name: Maybe[str], last_name: Maybe[str]
    ) -> User:
        check = Checker()
        changes: dict[str, str] = {}
        if first_name is not UNSET:
            changes["first_name"] = check.name("firstName", first_name)
        if last_name is not UNSET:
            changes["last_name"] = check.name("lastName", last_name)
        check.done()

        user = await self._own_user(uow, principal)
        for name, value in changes.items():
            setattr(user, name, value)
        if changes:
            user.updated_at = self.rt.clock.now()
        await uow.commit()
        return user

    async def change_password(
        self, uow: UnitOfWork, principal: Principal, current: str, new: str
    ) -> None:
        check = Checker()
        current = check.given_password("currentPassword", current)
        new = check.new_password("newPassword", new)
        check.done()

        user = await self._own_user(uow, principal)
        await uow.release()
        if not (await self.rt.hasher.verify(user.password_hash, current)).ok:
            raise InvalidCredentials()
        new_hash = await self.rt.hasher.hash(new)

        now = self.rt.clock.now()
        user.password_hash = new_hash
        user.password_changed_at = now
        user.updated_at = now
        await uow.sessions.revoke_all(user.id, now, "password_changed", keep=principal.session_id)
        await uow.commit()

    async def _own_user(self, uow: UnitOfWork, principal: Principal) -> User:
        user = await uow.users.get(principal.user_id)
        if user is None:  # deleted between authentication and now
            raise InvalidCredentials()
        return user
