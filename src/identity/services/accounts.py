"""A person's own account: register, edit the profile, change the password."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from identity.db.models import User
from identity.services import events
from identity.services.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    NotFound,
    SignedOut,
)
from identity.services.fields import UNSET, Maybe
from identity.services.principal import Principal
from identity.services.recovery import Recovery
from identity.services.rules import USER_ROLE, add_user, guard_last_admin
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker


@dataclass(frozen=True, slots=True)
class Registration:
    email: str
    password: str
    first_name: str
    last_name: str


class Accounts:
    def __init__(self, rt: Runtime, recovery: Recovery, throttle: Throttle) -> None:
        self.rt = rt
        self.recovery = recovery
        self.throttle = throttle

    async def register(self, uow: UnitOfWork, data: Registration) -> User:
        check = Checker()
        email = check.email("email", data.email)
        password = check.new_password("password", data.password)
        first_name = check.name("firstName", data.first_name)
        last_name = check.name("lastName", data.last_name)
        check.done()
        await self.throttle.per_address(self.throttle.register_address, uow.client)
        await self.throttle.count(self.throttle.register_email, email)

        if await uow.users.email_taken(email):
            raise EmailAlreadyRegistered()
        await uow.release()
        password_hash = await self.rt.hasher.hash(password)

        # Someone may have registered the same address while the password was being hashed.
        user = await add_user(
            uow,
            self.rt.clock.now(),
            email=email,
            first_name=first_name,
            last_name=last_name,
            password_hash=password_hash,
            is_verified=False,
        )
        role = await uow.roles.by_name(USER_ROLE)
        if role is not None:
            await uow.roles.grant(user.id, role.id)
        await self.recovery.send_verification(uow, user)
        uow.audit.record("user.registered", actor=user.id, subject=user.id)
        uow.events.add(
            events.USER_CREATED,
            events.user_data(
                user, roles=[role.name] if role else [], source="register", actorId=None
            ),
        )
        await uow.commit()
        return user

    async def update_me(
        self,
        uow: UnitOfWork,
        principal: Principal,
        first_name: Maybe[str],
        last_name: Maybe[str],
        user_metadata: Maybe[Any] = UNSET,
    ) -> User:
        check = Checker()
        changes: dict[str, Any] = {}
        if first_name is not UNSET:
            changes["first_name"] = check.name("firstName", first_name)
        if last_name is not UNSET:
            changes["last_name"] = check.name("lastName", last_name)
        if user_metadata is not UNSET:
            changes["user_metadata"] = check.metadata("userMetadata", user_metadata)
        check.done()

        user = await self._own_user(uow, principal)
        changed = sorted(name for name, value in changes.items() if getattr(user, name) != value)
        for name in changed:
            setattr(user, name, changes[name])
        if changed:
            user.updated_at = self.rt.clock.now()
            uow.audit.record("user.profile_updated", actor=user.id, subject=user.id, fields=changed)
            events.user_changed(uow.events, user, changed, actor=None)
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
        await self.throttle.check_password(uow, user, current)
        new_hash = await self.rt.hasher.hash(new)

        now = self.rt.clock.now()
        user.password_hash = new_hash
        user.password_changed_at = now
        user.updated_at = now
        ended = await uow.sessions.revoke_all(
            user.id, now, "password_changed", keep=principal.session_id
        )
        await uow.tokens.void(user.id, now)
        uow.audit.record(
            "user.password_changed", actor=user.id, subject=user.id, sessions_ended=len(ended)
        )
        uow.events.add(
            events.USER_PASSWORD_CHANGED,
            {"userId": user.id, "reason": "changed", "sessionsEnded": len(ended)},
        )
        events.sessions_ended(uow.events, user.id, ended, "password_changed")
        uow.outbox.add("password_changed", user.email, first_name=user.first_name)
        await uow.commit()

    async def revoke_session(
        self, uow: UnitOfWork, principal: Principal, session_id: uuid.UUID
    ) -> None:
        """End one of my sessions; someone else's or an ended one is NotFound."""
        session = await uow.sessions.get(session_id)
        now = self.rt.clock.now()
        if (
            session is None
            or session.user_id != principal.user_id
            or session.revoked_at is not None
            or session.expires_at <= now
        ):
            raise NotFound("No session with this id.")
        await uow.sessions.revoke(session.id, now, "revoked_by_user")
        events.sessions_ended(uow.events, principal.user_id, [session.id], "revoked_by_user")
        uow.audit.record(
            "session.revoked",
            actor=principal.user_id,
            subject=principal.user_id,
            session_id=str(session.id),
        )
        await uow.commit()

    async def revoke_all_sessions(
        self, uow: UnitOfWork, principal: Principal, keep_current: bool
    ) -> int:
        keep = principal.session_id if keep_current else None
        ended = await uow.sessions.revoke_all(
            principal.user_id, self.rt.clock.now(), "revoked_by_user", keep=keep
        )
        count = len(ended)
        events.sessions_ended(uow.events, principal.user_id, ended, "revoked_by_user")
        uow.audit.record(
            "session.revoked_all",
            actor=principal.user_id,
            subject=principal.user_id,
            count=count,
            kept_current=keep_current,
        )
        await uow.commit()
        return count

    async def delete_me(self, uow: UnitOfWork, principal: Principal, password: str) -> None:
        check = Checker()
        password = check.given_password("currentPassword", password)
        if check.problems:  # empty or over-long: it cannot be the password
            raise InvalidCredentials()
        user = await self._own_user(uow, principal)
        await self.throttle.check_password(uow, user, password)
        await guard_last_admin(uow, user)
        await uow.users.delete(user.id)
        uow.audit.record("user.deleted_self", actor=user.id, subject=user.id)
        uow.events.add(
            events.USER_DELETED,
            {"userId": user.id, "email": user.email, "deletedBy": "self", "actorId": None},
        )
        await uow.commit()

    async def _own_user(self, uow: UnitOfWork, principal: Principal) -> User:
        user = await uow.users.get(principal.user_id)
        if user is None:  # deleted between authentication and now
            raise SignedOut()
        return user
