"""Who may resolve a field: permission classes for Strawberry, and a helper that names them.

No usable token gives UNAUTHENTICATED; a signed-in caller without the permission gets
FORBIDDEN, or MFA_REQUIRED when a role of theirs that requires MFA would give it in a session
signed in with a second factor. Permissions are read from the database on every request
(see Context.principal), so a removed role stops working at once.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from identity.graphql.context import GraphQLInfo, unauthenticated
from identity.graphql.errors import forbidden, mfa_required
from identity.services.principal import Principal


def with_mfa(principal: Principal) -> Principal:
    """The same caller as a session at aal 2 would be."""
    return dataclasses.replace(principal, permissions=principal.permissions | principal.withheld)


class Rule(BasePermission):
    """A permission that looks at the signed-in principal; missing token: UNAUTHENTICATED."""

    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: GraphQLInfo, **kwargs: Any) -> bool:
        principal = await info.context.principal()
        if principal is None:
            raise unauthenticated()
        if not self.allows(principal, source):
            if principal.withheld and self.allows(with_mfa(principal), source):
                raise mfa_required()
            raise forbidden(f"Forbidden. {self.describe()}")
        return True

    @abc.abstractmethod
    def allows(self, principal: Principal, source: Any) -> bool: ...

    @abc.abstractmethod
    def describe(self) -> str: ...


class IsAuthenticated(Rule):
    def allows(self, principal: Principal, source: Any) -> bool:
        return True

    def describe(self) -> str:
        return "Requires a signed-in user."


class HasPermission(Rule):
    def __init__(self, *codes: str) -> None:
        self.codes = codes

    def allows(self, principal: Principal, source: Any) -> bool:
        return all(principal.has(code) for code in self.codes)

    def describe(self) -> str:
        names = " and ".join(f"`{code}`" for code in self.codes)
        return f"Requires the {names} permission{'s' if len(self.codes) > 1 else ''}."


class IsSelf(Rule):
    """The field belongs to the signed-in user (its source has `user_id`)."""

    def allows(self, principal: Principal, source: Any) -> bool:
        return getattr(source, "user_id", None) == principal.user_id

    def describe(self) -> str:
        return "Requires being this user."


class AnyOf(Rule):
    def __init__(self, *rules: Rule) -> None:
        self.rules = rules

    def allows(self, principal: Principal, source: Any) -> bool:
        return any(rule.allows(principal, source) for rule in self.rules)

    def describe(self) -> str:
        parts = [rule.describe().removeprefix("Requires ").rstrip(".") for rule in self.rules]
        return "Requires " + ", or ".join(parts) + "."


def guarded(rule: Rule) -> list[FieldExtension]:
    # use_directives=False: the requirement is in the description, not an SDL directive.
    return [PermissionExtension(permissions=[rule], use_directives=False)]


def requires(rule: Rule, description: str) -> dict[str, Any]:
    """Field options: the guard, and a description that names what it needs."""
    return {"description": f"{description} {rule.describe()}", "extensions": guarded(rule)}
