"""Getting back in and proving an address. Links are opened anywhere: no sign-in needed."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    ValidationError,
)
from identity.graphql.mutations import mutation
from identity.graphql.permissions import IsAuthenticated
from identity.graphql.types import User


@strawberry.input
class RequestPasswordResetInput:
    email: str


@strawberry.input
class ResetPasswordInput:
    token: str = strawberry.field(description="From the link's fragment: `…#token=<token>`.")
    password: str
    password_confirm: str


@strawberry.input
class VerifyEmailInput:
    token: str


@strawberry.input
class RequestEmailChangeInput:
    new_email: str
    current_password: str


@strawberry.input
class ConfirmEmailChangeInput:
    token: str


@strawberry.type
class RequestPasswordResetSuccess:
    message: str


@strawberry.type
class ResetPasswordSuccess:
    message: str


@strawberry.type
class RequestEmailVerificationSuccess:
    message: str


@strawberry.type
class VerifyEmailSuccess:
    user: User


@strawberry.type
class RequestEmailChangeSuccess:
    message: str


@strawberry.type
class ConfirmEmailChangeSuccess:
    user: User


RequestPasswordResetResult = Annotated[
    RequestPasswordResetSuccess | ValidationError | RateLimited,
    strawberry.union("RequestPasswordResetResult"),
]
ResetPasswordResult = Annotated[
    ResetPasswordSuccess | InvalidToken | ValidationError, strawberry.union("ResetPasswordResult")
]
RequestEmailVerificationResult = Annotated[
    RequestEmailVerificationSuccess | RateLimited,
    strawberry.union("RequestEmailVerificationResult"),
]
VerifyEmailResult = Annotated[
    VerifyEmailSuccess | InvalidToken, strawberry.union("VerifyEmailResult")
]
RequestEmailChangeResult = Annotated[
    RequestEmailChangeSuccess
    | InvalidCredentials
    | EmailAlreadyRegistered
    | ValidationError
    | RateLimited,
    strawberry.union("RequestEmailChangeResult"),
]
ConfirmEmailChangeResult = Annotated[
    ConfirmEmailChangeSuccess | InvalidToken | EmailAlreadyRegistered,
    strawberry.union("ConfirmEmailChangeResult"),
]

RESET_REQUESTED = "If an account uses this address, a link to reset its password is on its way."


@strawberry.type
class RecoveryMutations:
    @mutation(
        "Mail a password-reset link (valid 30 minutes by default). The answer is the same "
        "whether or not "
        "an account uses the address."
    )
    async def request_password_reset(
        self, info: GraphQLInfo, input: RequestPasswordResetInput
    ) -> RequestPasswordResetResult:
        async with info.context.unit_of_work() as uow:
            await info.context.container.recovery.request_password_reset(uow, input.email)
        return RequestPasswordResetSuccess(message=RESET_REQUESTED)

    @mutation(
        "Set a new password with the token of a reset or invitation link; every session of "
        "the account ends and its address counts as verified."
    )
    async def reset_password(
        self, info: GraphQLInfo, input: ResetPasswordInput
    ) -> ResetPasswordResult:
        async with info.context.unit_of_work() as uow:
            await info.context.container.recovery.reset_password(
                uow, input.token, input.password, input.password_confirm
            )
        return ResetPasswordSuccess(message="Password set. Sign in with the new password.")

    @mutation(
        "Mail a link that verifies your address (valid 24 hours by default); nothing is sent "
        "if it is "
        "verified already.",
        IsAuthenticated(),
    )
    async def request_email_verification(self, info: GraphQLInfo) -> RequestEmailVerificationResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            sent = await info.context.container.recovery.request_email_verification(uow, principal)
        message = "A verification link is on its way." if sent else "Your address is verified."
        return RequestEmailVerificationSuccess(message=message)

    @mutation("Verify an address with the token of its link.")
    async def verify_email(self, info: GraphQLInfo, input: VerifyEmailInput) -> VerifyEmailResult:
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.recovery.verify_email(uow, input.token)
        return VerifyEmailSuccess(user=User.from_row(user))

    @mutation(
        "Start moving your account to another address: a link goes to the new address, a "
        "notice to the current one.",
        IsAuthenticated(),
    )
    async def request_email_change(
        self, info: GraphQLInfo, input: RequestEmailChangeInput
    ) -> RequestEmailChangeResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.recovery.request_email_change(
                uow, principal, input.new_email, input.current_password
            )
        return RequestEmailChangeSuccess(
            message="A confirmation link is on its way to the new address."
        )

    @mutation(
        "Switch to the new address with the token of its link; the account's other sessions "
        "end (the caller's continues, if signed in)."
    )
    async def confirm_email_change(
        self, info: GraphQLInfo, input: ConfirmEmailChangeInput
    ) -> ConfirmEmailChangeResult:
        bearer = await info.context.principal_if_any()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.recovery.confirm_email_change(
                uow, input.token, bearer
            )
        return ConfirmEmailChangeSuccess(user=User.from_row(user))
