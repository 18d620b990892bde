"""The signed-in user's own account."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import InvalidCredentials, RateLimited, ValidationError
from identity.graphql.mutations import mutation
from identity.graphql.types import User
from identity.services.fields import UNSET, Maybe


@strawberry.input
class UpdateMeInput:
    first_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Omit to keep; null is refused."
    )
    last_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Omit to keep; null is refused."
    )


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type
class UpdateMeSuccess:
    user: User


@strawberry.type
class ChangePasswordSuccess:
    message: str


UpdateMeResult = Annotated[UpdateMeSuccess | ValidationError, strawberry.union("UpdateMeResult")]
ChangePasswordResult = Annotated[
    ChangePasswordSuccess | InvalidCredentials | ValidationError | RateLimited,
    strawberry.union("ChangePasswordResult"),
]


def _maybe(value: str | None) -> Maybe[str]:
    """Strawberry's UNSET (omitted in the input) as the services' own marker."""
    return UNSET if value is strawberry.UNSET else value


@strawberry.type
class AccountMutations:
    @mutation("Change your own name. Requires a signed-in user.")
    async def update_me(self, info: GraphQLInfo, input: UpdateMeInput) -> UpdateMeResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.accounts.update_me(
                uow, principal, _maybe(input.first_name), _maybe(input.last_name)
            )
        return UpdateMeSuccess(user=User.from_row(user))

    @mutation("Change your password; your other sessions end. Requires a signed-in user.")
    async def change_password(
        self, info: GraphQLInfo, input: ChangePasswordInput
    ) -> ChangePasswordResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.accounts.change_password(
                uow, principal, input.current_password, input.new_password
            )
        return ChangePasswordSuccess(message="Password changed.")
