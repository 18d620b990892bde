"""Roles and the permission catalogue: create, edit and delete roles."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from identity.db.models import Permission, Role
from identity.services import events, privileges
from identity.services.errors import NotFound, ValidationFailed
from identity.services.fields import UNSET, Maybe
from identity.services.principal import Principal
from identity.services.rules import ADMIN_ROLE
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class RoleChanges:
    name: Maybe[str] = UNSET
    description: Maybe[str] = UNSET
    permissions: Maybe[list[str]] = UNSET
    requires_mfa: Maybe[bool] = UNSET


class Roles:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def create_role(
        self,
        uow: UnitOfWork,
        actor: Principal,
        name: str,
        description: str,
        codes: list[str],
        requires_mfa: bool = False,
    ) -> Role:
        check = Checker()
        name = self._role_name(check, name)
        description = self._description(check, description)
        codes = await self._known_codes(uow, check, codes)
        if name and await uow.roles.by_name(name) is not None:
            check.fail("name", "taken", "A role with this name exists.")
        check.done()
        privileges.ensure_held(actor, codes)
        now = self.rt.clock.now()
        role = Role(
            id=uuid.uuid4(),
            name=name,
            description=description,
            is_system=False,
            requires_mfa=requires_mfa,
            created_at=now,
            updated_at=now,
        )
        uow.roles.add(role)
        try:
            await uow.roles.flush()
        except IntegrityError:
            await uow.rollback()
            raise ValidationFailed.one("name", "taken", "A role with this name exists.") from None
        await uow.roles.set_permissions(role.id, codes)
        uow.audit.record(
            "admin.role_created",
            actor=actor.user_id,
            role=name,
            permissions=codes,
            requires_mfa=requires_mfa,
        )
        await uow.commit()
        return role

    async def update_role(
        self, uow: UnitOfWork, actor: Principal, role_id: uuid.UUID, changes: RoleChanges
    ) -> Role:
        role = await self._role(uow, role_id)
        await privileges.ensure_grantable(uow, actor, role)
        check = Checker()
        name = description = None
        codes: list[str] | None = None
        if changes.name is not UNSET:
            name = self._role_name(check, changes.name)
            if role.is_system and name != role.name:
                check.fail("name", "system_role", "System roles cannot be renamed.")
            elif name != role.name and await uow.roles.by_name(name) is not None:
                check.fail("name", "taken", "A role with this name exists.")
        if changes.description is not UNSET:
            description = self._description(check, changes.description)
        if changes.permissions is not UNSET:
            if changes.permissions is None:
                check.fail("permissions", "required", "This field cannot be null.")
            else:
                codes = await self._known_codes(uow, check, changes.permissions)
                if role.name == ADMIN_ROLE and set(codes) != {
                    p.code for p in await uow.roles.catalogue()
                }:
                    check.fail(
                        "permissions", "system_role", "The admin role keeps every permission."
                    )
        if changes.requires_mfa is None:
            check.fail("requiresMfa", "required", "This field cannot be null.")
        check.done()
        if codes is not None:
            privileges.ensure_held(actor, codes)

        details: dict[str, Any] = {}
        if name is not None and name != role.name:
            details["renamed_from"] = role.name
            role.name = name
        if description is not None and description != role.description:
            role.description = description
            details["description"] = True
        if changes.requires_mfa not in (UNSET, None, role.requires_mfa):
            role.requires_mfa = bool(changes.requires_mfa)
            details["requires_mfa"] = role.requires_mfa
        if codes is not None:
            before = await uow.roles.permission_codes(role.id)
            if before != sorted(codes):
                await uow.roles.set_permissions(role.id, codes)
                details["permissions"] = sorted(codes)
                details["permissions_before"] = before
        if details:
            role.updated_at = self.rt.clock.now()
            uow.audit.record("admin.role_updated", actor=actor.user_id, role=role.name, **details)
        try:
            await uow.commit()
        except IntegrityError:
            await uow.rollback()
            raise ValidationFailed.one("name", "taken", "A role with this name exists.") from None
        return role

    async def delete_role(self, uow: UnitOfWork, actor: Principal, role_id: uuid.UUID) -> None:
        """Deleting an assigned role takes it from its holders (each is audited)."""
        role = await self._role(uow, role_id)
        if role.is_system:
            raise ValidationFailed.one("id", "system_role", "System roles cannot be deleted.")
        await privileges.ensure_grantable(uow, actor, role)
        holders = await uow.roles.holders(role.id)
        for holder in holders:
            uow.audit.record(
                "admin.role_revoked", actor=actor.user_id, subject=holder, role=role.name
            )
            uow.events.add(events.ROLE_REVOKED, events.role_data(holder, role, actor.user_id))
        await uow.roles.delete(role.id)
        uow.audit.record(
            "admin.role_deleted", actor=actor.user_id, role=role.name, holders=len(holders)
        )
        await uow.commit()

    async def catalogue(self, uow: UnitOfWork) -> list[Permission]:
        return await uow.roles.catalogue()

    # Helpers ----------------------------------------------------------------------------

    async def _role(self, uow: UnitOfWork, role_id: uuid.UUID) -> Role:
        role = await uow.roles.get(role_id)
        if role is None:
            raise NotFound("No role with this id.")
        return role

    async def _known_codes(self, uow: UnitOfWork, check: Checker, codes: list[str]) -> list[str]:
        catalogue = {p.code for p in await uow.roles.catalogue()}
        unknown = sorted(set(codes) - catalogue)
        if unknown:
            check.fail(
                "permissions", "unknown_permission", f"Unknown permissions: {', '.join(unknown)}."
            )
        return sorted(set(codes) & catalogue)

    def _role_name(self, check: Checker, name: str | None) -> str:
        if name is None:
            check.fail("name", "required", "This field cannot be null.")
            return ""
        name = name.strip()
        if not name:
            check.fail("name", "required", "Enter a name.")
        elif len(name) > 64:
            check.fail("name", "too_long", "Use at most 64 characters.")
        elif not _ROLE_NAME.match(name):
            check.fail(
                "name",
                "invalid_characters",
                "Use letters, digits and . _ : - (starting with a letter or digit).",
            )
        return name

    def _description(self, check: Checker, description: str | None) -> str:
        if description is None:
            check.fail("description", "required", "This field cannot be null.")
            return ""
        description = description.strip()
        if len(description) > 255:
            check.fail("description", "too_long", "Use at most 255 characters.")
        return description
