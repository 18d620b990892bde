"""The signed-in user's own account."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import (
    InvalidCredentials,
    LastAdmin,
    NotFound,
    RateLimited,
    ValidationError,
)
from identity.graphql.mutations import maybe, mutation, parse_id, sessions_ended
from identity.graphql.permissions import IsAuthenticated
from identity.graphql.types import User


@strawberry.input
class UpdateMeInput:
    first_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Omit to keep; null is refused."
    )
    last_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Omit to keep; null is refused."
    )
    user_metadata: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the whole object (at most 4 KiB as JSON); {} clears it.",
    )


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.input
class DeleteMeInput:
    current_password: str


@strawberry.type
class UpdateMeSuccess:
    user: User


@strawberry.type
class ChangePasswordSuccess:
    message: str


@strawberry.type
class DeleteMeSuccess:
    message: str


@strawberry.type
class RevokeSessionSuccess:
    message: str


@strawberry.type
class RevokeAllSessionsSuccess:
    message: str
    count: int


UpdateMeResult = Annotated[UpdateMeSuccess | ValidationError, strawberry.union("UpdateMeResult")]
ChangePasswordResult = Annotated[
    ChangePasswordSuccess | InvalidCredentials | ValidationError | RateLimited,
    strawberry.union("ChangePasswordResult"),
]
DeleteMeResult = Annotated[
    DeleteMeSuccess | InvalidCredentials | LastAdmin | RateLimited,
    strawberry.union("DeleteMeResult"),
]
RevokeSessionResult = Annotated[
    RevokeSessionSuccess | NotFound, strawberry.union("RevokeSessionResult")
]
RevokeAllSessionsResult = Annotated[
    RevokeAllSessionsSuccess, strawberry.union("RevokeAllSessionsResult")
]


@strawberry.type
class AccountMutations:
    @mutation("Change your own name or userMetadata.", IsAuthenticated())
    async def update_me(self, info: GraphQLInfo, input: UpdateMeInput) -> UpdateMeResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.accounts.update_me(
                uow,
                principal,
                maybe(input.first_name),
                maybe(input.last_name),
                maybe(input.user_metadata),
            )
        return UpdateMeSuccess(user=User.from_row(user))

    @mutation("Change your password; your other sessions end.", IsAuthenticated())
    async def change_password(
        self, info: GraphQLInfo, input: ChangePasswordInput
    ) -> ChangePasswordResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.accounts.change_password(
                uow, principal, input.current_password, input.new_password
            )
        return ChangePasswordSuccess(message="Password changed.")

    @mutation("End one of your sessions; its tokens stop working at once.", IsAuthenticated())
    async def revoke_session(self, info: GraphQLInfo, id: strawberry.ID) -> RevokeSessionResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.accounts.revoke_session(
                uow, principal, parse_id(id, "session")
            )
        return RevokeSessionSuccess(message="Session ended.")

    @mutation("End all your sessions, or all but the caller's.", IsAuthenticated())
    async def revoke_all_sessions(
        self, info: GraphQLInfo, keep_current: bool | None = True
    ) -> RevokeAllSessionsResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            count = await info.context.container.accounts.revoke_all_sessions(
                uow, principal, keep_current is not False
            )
        return RevokeAllSessionsSuccess(message=sessions_ended(count), count=count)

    @mutation(
        "Delete your own account, with its sessions; the last admin cannot.", IsAuthenticated()
    )
    async def delete_me(self, info: GraphQLInfo, input: DeleteMeInput) -> DeleteMeResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.accounts.delete_me(uow, principal, input.current_password)
        return DeleteMeSuccess(message="Your account was deleted.")
