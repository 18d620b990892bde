"""Roles and the permissions they grant."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import NotFound, ValidationError
from identity.graphql.mutations import maybe, mutation, parse_id
from identity.graphql.permissions import HasPermission
from identity.graphql.types import Role
from identity.services.roles import RoleChanges


@strawberry.input
class CreateRoleInput:
    name: str
    description: str = ""
    permissions: list[str] = strawberry.field(
        default_factory=list, description="Permission codes, e.g. `users:read`."
    )
    requires_mfa: bool = strawberry.field(
        default=False,
        description="Grant the permissions only in sessions signed in with a second factor.",
    )


@strawberry.input(description="Omitted fields stay as they are; null is refused.")
class UpdateRoleInput:
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="System roles cannot be renamed."
    )
    description: str | None = strawberry.UNSET
    permissions: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The complete new set of permission codes."
    )
    requires_mfa: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Grant the permissions only in sessions signed in with a second factor.",
    )


@strawberry.type
class CreateRoleSuccess:
    role: Role


@strawberry.type
class UpdateRoleSuccess:
    role: Role


@strawberry.type
class DeleteRoleSuccess:
    message: str


CreateRoleResult = Annotated[
    CreateRoleSuccess | ValidationError, strawberry.union("CreateRoleResult")
]
UpdateRoleResult = Annotated[
    UpdateRoleSuccess | NotFound | ValidationError, strawberry.union("UpdateRoleResult")
]
DeleteRoleResult = Annotated[
    DeleteRoleSuccess | NotFound | ValidationError, strawberry.union("DeleteRoleResult")
]


@strawberry.type
class RoleMutations:
    @mutation("Create a role granting the given permissions.", HasPermission("roles:write"))
    async def create_role(self, info: GraphQLInfo, input: CreateRoleInput) -> CreateRoleResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            role = await info.context.container.roles.create_role(
                uow, principal, input.name, input.description, input.permissions, input.requires_mfa
            )
        return CreateRoleSuccess(role=Role.from_row(role))

    @mutation(
        "Rename a role, or change what it grants; holders gain or lose it at once.",
        HasPermission("roles:write"),
    )
    async def update_role(
        self, info: GraphQLInfo, id: strawberry.ID, input: UpdateRoleInput
    ) -> UpdateRoleResult:
        principal = await info.context.require_principal()
        changes = RoleChanges(
            name=maybe(input.name),
            description=maybe(input.description),
            permissions=maybe(input.permissions),
            requires_mfa=maybe(input.requires_mfa),
        )
        async with info.context.unit_of_work() as uow:
            role = await info.context.container.roles.update_role(
                uow, principal, parse_id(id, "role"), changes
            )
        info.context.loaders.forget()
        return UpdateRoleSuccess(role=Role.from_row(role))

    @mutation(
        "Delete a role; its holders lose it. System roles cannot be deleted.",
        HasPermission("roles:write"),
    )
    async def delete_role(self, info: GraphQLInfo, id: strawberry.ID) -> DeleteRoleResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.roles.delete_role(uow, principal, parse_id(id, "role"))
        info.context.loaders.forget()
        return DeleteRoleSuccess(message="Role deleted.")
