"""Admins managing other people's accounts."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import EmailAlreadyRegistered, LastAdmin, NotFound, ValidationError
from identity.graphql.mutations import maybe, mutation, parse_id, sessions_ended
from identity.graphql.permissions import HasPermission
from identity.graphql.types import User
from identity.services.admin import UserChanges


@strawberry.input
class CreateUserInput:
    email: str
    first_name: str = ""
    last_name: str = ""
    roles: list[str] = strawberry.field(
        default_factory=lambda: ["user"], description="Role names; `user` when omitted."
    )


@strawberry.input(description="Omitted fields stay as they are; null is refused.")
class UpdateUserInput:
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    email: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new address is unverified; the old one gets a notice.",
    )
    is_active: bool | None = strawberry.field(
        default=strawberry.UNSET, description="false ends every session of the user."
    )
    app_metadata: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "Replaces the whole object (at most 4 KiB as JSON); access tokens carry it. "
            "Nobody sets their own."
        ),
    )


@strawberry.type
class CreateUserSuccess:
    user: User


@strawberry.type
class UpdateUserSuccess:
    user: User


@strawberry.type
class DeleteUserSuccess:
    message: str


@strawberry.type
class VerifyUserSuccess:
    user: User


@strawberry.type
class RevokeUserSessionsSuccess:
    message: str
    count: int


@strawberry.type
class AssignRoleSuccess:
    user: User


@strawberry.type
class RevokeRoleSuccess:
    user: User


CreateUserResult = Annotated[
    CreateUserSuccess | ValidationError | EmailAlreadyRegistered,
    strawberry.union("CreateUserResult"),
]
UpdateUserResult = Annotated[
    UpdateUserSuccess | NotFound | ValidationError | EmailAlreadyRegistered | LastAdmin,
    strawberry.union("UpdateUserResult"),
]
DeleteUserResult = Annotated[
    DeleteUserSuccess | NotFound | LastAdmin, strawberry.union("DeleteUserResult")
]
VerifyUserResult = Annotated[VerifyUserSuccess | NotFound, strawberry.union("VerifyUserResult")]
RevokeUserSessionsResult = Annotated[
    RevokeUserSessionsSuccess | NotFound, strawberry.union("RevokeUserSessionsResult")
]
AssignRoleResult = Annotated[AssignRoleSuccess | NotFound, strawberry.union("AssignRoleResult")]
RevokeRoleResult = Annotated[
    RevokeRoleSuccess | NotFound | LastAdmin, strawberry.union("RevokeRoleResult")
]


@strawberry.type
class AdminMutations:
    @mutation(
        "Create an account without a password and mail its owner an invitation link (valid "
        "7 days by default) to choose one.",
        HasPermission("users:write"),
    )
    async def create_user(self, info: GraphQLInfo, input: CreateUserInput) -> CreateUserResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.admin.create_user(
                uow, principal, input.email, input.first_name, input.last_name, input.roles
            )
        return CreateUserSuccess(user=User.from_row(user))

    @mutation("Edit a user; deactivating one ends their sessions.", HasPermission("users:write"))
    async def update_user(
        self, info: GraphQLInfo, id: strawberry.ID, input: UpdateUserInput
    ) -> UpdateUserResult:
        principal = await info.context.require_principal()
        changes = UserChanges(
            first_name=maybe(input.first_name),
            last_name=maybe(input.last_name),
            email=maybe(input.email),
            is_active=maybe(input.is_active),
            app_metadata=maybe(input.app_metadata),
        )
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.admin.update_user(
                uow, principal, parse_id(id, "user"), changes
            )
        return UpdateUserSuccess(user=User.from_row(user))

    @mutation(
        "Delete a user with their roles and sessions; audit events keep the id.",
        HasPermission("users:delete"),
    )
    async def delete_user(self, info: GraphQLInfo, id: strawberry.ID) -> DeleteUserResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.admin.delete_user(uow, principal, parse_id(id, "user"))
        return DeleteUserSuccess(message="User deleted.")

    @mutation("Mark a user's address as verified.", HasPermission("users:write"))
    async def verify_user(self, info: GraphQLInfo, id: strawberry.ID) -> VerifyUserResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.admin.verify_user(
                uow, principal, parse_id(id, "user")
            )
        return VerifyUserSuccess(user=User.from_row(user))

    @mutation("End every session of a user.", HasPermission("users:write"))
    async def revoke_user_sessions(
        self, info: GraphQLInfo, user_id: strawberry.ID
    ) -> RevokeUserSessionsResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            count = await info.context.container.admin.revoke_user_sessions(
                uow, principal, parse_id(user_id, "user")
            )
        return RevokeUserSessionsSuccess(message=sessions_ended(count), count=count)

    @mutation("Give a user a role (idempotent).", HasPermission("roles:assign"))
    async def assign_role(
        self, info: GraphQLInfo, user_id: strawberry.ID, role_id: strawberry.ID
    ) -> AssignRoleResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.admin.assign_role(
                uow, principal, parse_id(user_id, "user"), parse_id(role_id, "role")
            )
        info.context.loaders.forget()
        return AssignRoleSuccess(user=User.from_row(user))

    @mutation(
        "Take a role from a user (idempotent); the last active admin keeps `admin`.",
        HasPermission("roles:assign"),
    )
    async def revoke_role(
        self, info: GraphQLInfo, user_id: strawberry.ID, role_id: strawberry.ID
    ) -> RevokeRoleResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.admin.revoke_role(
                uow, principal, parse_id(user_id, "user"), parse_id(role_id, "role")
            )
        info.context.loaders.forget()
        return RevokeRoleSuccess(user=User.from_row(user))
