"""What admins do: manage users, roles and permissions, and read the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from identity.db.models import AuditEvent, Role, User
from identity.repositories.audit import AuditQuery
from identity.repositories.users import UserQuery
from identity.services import events, privileges
from identity.services.errors import (
    EmailAlreadyRegistered,
    NotFound,
    PermissionDenied,
)
from identity.services.fields import UNSET, Maybe
from identity.services.paging import Cursors, Page
from identity.services.principal import Principal
from identity.services.rules import ADMIN_ROLE, USER_ROLE, add_user, guard_last_admin
from identity.services.runtime import Runtime
from identity.services.tokens import INVITATION, OneTimeTokens
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker


@dataclass(frozen=True, slots=True)
class AdminGrant:
    user: User
    created: bool
    granted: bool


@dataclass(frozen=True, slots=True)
class UserChanges:
    first_name: Maybe[str] = UNSET
    last_name: Maybe[str] = UNSET
    email: Maybe[str] = UNSET
    is_active: Maybe[bool] = UNSET
    app_metadata: Maybe[Any] = UNSET


class Admin:
    def __init__(self, rt: Runtime, tokens: OneTimeTokens) -> None:
        self.rt = rt
        self.tokens = tokens
        self.cursors = Cursors(rt.secret)

    # Users ------------------------------------------------------------------------------

    async def users(
        self, uow: UnitOfWork, query: UserQuery, first: int, after: str | None
    ) -> Page[User]:
        return await self.cursors.page(
            "users", first, after, lambda limit, at: uow.users.page(query, limit, at)
        )

    def user_cursor(self, user: User) -> str:
        return self.cursors.encode("users", user.created_at, user.id)

    async def create_user(
        self,
        uow: UnitOfWork,
        actor: Principal,
        email: str,
        first_name: str,
        last_name: str,
        role_names: list[str],
    ) -> User:
        """An account without a password; the invitation link lets its owner set one."""
        check = Checker()
        email = check.email("email", email)
        first_name = check.name("firstName", first_name)
        last_name = check.name("lastName", last_name)
        roles = await self._roles_named(uow, check, "roles", role_names)
        check.done()
        if any(role.name != USER_ROLE for role in roles):
            privileges.ensure_held(actor, ["roles:assign"])
        for role in roles:
            await privileges.ensure_grantable(uow, actor, role)
        if await uow.users.email_taken(email):
            raise EmailAlreadyRegistered()
        user = await add_user(
            uow,
            self.rt.clock.now(),
            email=email,
            first_name=first_name,
            last_name=last_name,
            password_hash=None,
            is_verified=False,
        )
        for role in roles:
            await uow.roles.grant(user.id, role.id)
        row = await self.tokens.issue(uow, user, INVITATION)
        uow.outbox.add(
            "invitation",
            user.email,
            token_id=row.id,
            first_name=user.first_name,
            invited_by=actor.user.email,
        )
        uow.audit.record(
            "admin.user_created",
            actor=actor.user_id,
            subject=user.id,
            roles=sorted(r.name for r in roles),
        )
        uow.events.add(
            events.USER_CREATED,
            events.user_data(
                user, roles=sorted(r.name for r in roles), source="admin", actorId=actor.user_id
            ),
        )
        await uow.commit()
        return user

    async def update_user(
        self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID, changes: UserChanges
    ) -> User:
        check = Checker()
        values: dict[str, object] = {}
        if changes.first_name is not UNSET:
            values["first_name"] = check.name("firstName", changes.first_name)
        if changes.last_name is not UNSET:
            values["last_name"] = check.name("lastName", changes.last_name)
        if changes.email is not UNSET:
            values["email"] = check.email("email", changes.email)
        if changes.is_active is not UNSET:
            if changes.is_active is None:
                check.fail("isActive", "required", "This field cannot be null.")
            else:
                values["is_active"] = changes.is_active
        if changes.app_metadata is not UNSET:
            values["app_metadata"] = check.metadata("appMetadata", changes.app_metadata)
        check.done()
        if "app_metadata" in values and user_id == actor.user_id:
            # Other services decide access on it: nobody raises their own.
            raise PermissionDenied("Forbidden: nobody edits their own appMetadata.")

        user = await privileges.target(uow, actor, user_id)
        changed = sorted(name for name, value in values.items() if getattr(user, name) != value)
        now = self.rt.clock.now()
        if "email" in changed:
            if await uow.users.email_taken(str(values["email"]), besides=user.id):
                raise EmailAlreadyRegistered()
            uow.outbox.add(
                "email_changed_by_admin",
                user.email,
                first_name=user.first_name,
                new_email=str(values["email"]),
            )
            user.is_verified = False
            await uow.tokens.void(user.id, now)
        ended: list[uuid.UUID] = []
        if "is_active" in changed and not values["is_active"]:
            await guard_last_admin(uow, user)
            ended = await uow.sessions.revoke_all(user.id, now, "deactivated")
            await uow.tokens.void(user.id, now)  # no link of theirs works while deactivated
        previous_email = user.email
        for name in changed:
            setattr(user, name, values[name])
        if changed:
            user.updated_at = now
            uow.audit.record(
                "admin.user_updated", actor=actor.user_id, subject=user.id, fields=changed
            )
            events.user_changed(uow.events, user, changed, actor=actor.user_id)
        if "email" in changed:
            uow.events.add(
                events.USER_EMAIL_CHANGED,
                {
                    "userId": user.id,
                    "email": user.email,
                    "previousEmail": previous_email,
                    "actorId": actor.user_id,
                },
            )
        events.sessions_ended(uow.events, user.id, ended, "deactivated", actor.user_id)
        try:
            await uow.commit()
        except IntegrityError:
            await uow.rollback()
            raise EmailAlreadyRegistered() from None
        return user

    async def verify_user(self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID) -> User:
        user = await privileges.target(uow, actor, user_id)
        if not user.is_verified:
            user.is_verified = True
            user.updated_at = self.rt.clock.now()
            uow.audit.record("admin.user_verified", actor=actor.user_id, subject=user.id)
            events.user_changed(uow.events, user, ["is_verified"], actor=actor.user_id)
        await uow.commit()
        return user

    async def delete_user(self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID) -> None:
        """The user, their roles, sessions and tokens go; audit events keep the id."""
        user = await privileges.target(uow, actor, user_id)
        await guard_last_admin(uow, user)
        await uow.users.delete(user.id)
        uow.audit.record("admin.user_deleted", actor=actor.user_id, subject=user.id)
        uow.events.add(
            events.USER_DELETED,
            {
                "userId": user.id,
                "email": user.email,
                "deletedBy": "admin",
                "actorId": actor.user_id,
            },
        )
        await uow.commit()

    async def revoke_user_sessions(
        self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID
    ) -> int:
        user = await privileges.target(uow, actor, user_id)
        ended = await uow.sessions.revoke_all(user.id, self.rt.clock.now(), "revoked_by_admin")
        count = len(ended)
        events.sessions_ended(uow.events, user.id, ended, "revoked_by_admin", actor.user_id)
        uow.audit.record(
            "admin.sessions_revoked", actor=actor.user_id, subject=user.id, count=count
        )
        await uow.commit()
        return count

    async def assign_role(
        self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID, role_id: uuid.UUID
    ) -> User:
        user = await privileges.target(uow, actor, user_id)
        role = await self._role(uow, role_id)
        await privileges.ensure_grantable(uow, actor, role)
        if await uow.roles.grant(user.id, role.id):
            uow.audit.record(
                "admin.role_assigned", actor=actor.user_id, subject=user.id, role=role.name
            )
            uow.events.add(events.ROLE_ASSIGNED, events.role_data(user.id, role, actor.user_id))
        await uow.commit()
        return user

    async def revoke_role(
        self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID, role_id: uuid.UUID
    ) -> User:
        user = await privileges.target(uow, actor, user_id)
        role = await self._role(uow, role_id)
        await privileges.ensure_grantable(uow, actor, role)
        if role.name == ADMIN_ROLE:
            await guard_last_admin(uow, user)
        if await uow.roles.take(user.id, role.id):
            uow.audit.record(
                "admin.role_revoked", actor=actor.user_id, subject=user.id, role=role.name
            )
            uow.events.add(events.ROLE_REVOKED, events.role_data(user.id, role, actor.user_id))
        await uow.commit()
        return user

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
            user = await add_user(
                uow,
                self.rt.clock.now(),
                email=email,
                first_name=first_name,
                last_name=last_name,
                password_hash=password_hash,
                is_verified=True,  # an operator vouches for the address
            )
        granted = await uow.roles.grant(user.id, role.id)
        if granted:
            uow.audit.record("cli.admin_granted", subject=user.id, created=created)
        if created:
            roles = [ADMIN_ROLE] if granted else []
            data = events.user_data(user, roles=roles, source="cli", actorId=None)
            uow.events.add(events.USER_CREATED, data)
        elif granted:
            uow.events.add(events.ROLE_ASSIGNED, events.role_data(user.id, role, None))
        await uow.commit()
        return AdminGrant(user=user, created=created, granted=granted)

    # Audit ------------------------------------------------------------------------------

    async def audit_events(
        self, uow: UnitOfWork, query: AuditQuery, first: int, after: str | None
    ) -> Page[AuditEvent]:
        return await self.cursors.page(
            "audit", first, after, lambda limit, at: uow.audit_events.page(query, limit, at)
        )

    def audit_cursor(self, event: AuditEvent) -> str:
        return self.cursors.encode("audit", event.occurred_at, event.id)

    async def prune_audit(self, uow: UnitOfWork, older_than: datetime) -> int:
        count = await uow.audit_events.prune(older_than)
        uow.audit.record("cli.audit_pruned", older_than=older_than.isoformat(), deleted=count)
        await uow.commit()
        return count

    # Helpers ----------------------------------------------------------------------------

    async def _role(self, uow: UnitOfWork, role_id: uuid.UUID) -> Role:
        role = await uow.roles.get(role_id)
        if role is None:
            raise NotFound("No role with this id.")
        return role

    async def _roles_named(
        self, uow: UnitOfWork, check: Checker, field: str, names: list[str]
    ) -> list[Role]:
        known = {role.name: role for role in await uow.roles.all()}
        unknown = sorted(set(names) - set(known))
        if unknown:
            check.fail(field, "unknown_role", f"Unknown roles: {', '.join(unknown)}.")
        return [known[name] for name in sorted(set(names)) if name in known]
