"""Second factors: the second step of signing in, enrolling, managing, an admin's reset."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    RateLimited,
    ValidationError,
)
from identity.graphql.factors import Factor
from identity.graphql.mutations import mutation, parse_id
from identity.graphql.mutations.auth import auth_payload
from identity.graphql.permissions import HasPermission, IsAuthenticated
from identity.graphql.types import AuthPayload, User

_PASSWORD = (
    "Your current password; omit it within IDENTITY_REAUTH_WINDOW (5 minutes by default) "
    "of signing in."
)


@strawberry.input
class VerifyMfaInput:
    mfa_token: str = strawberry.field(description="From `login`'s `MfaRequired`.")
    totp_code: str | None = strawberry.field(
        default=None, description="The 6 digits of an authenticator app (spaces are fine)."
    )
    recovery_code: str | None = strawberry.field(
        default=None, description="An unused recovery code, with or without its dash."
    )
    passkey: JSON | None = strawberry.field(
        default=None,
        description="The JSON of `navigator.credentials.get()` with `passkeyOptions` "
        "(`credential.toJSON()`).",
    )


@strawberry.input
class StartTotpEnrollmentInput:
    current_password: str | None = strawberry.field(default=None, description=_PASSWORD)


@strawberry.input
class ConfirmTotpEnrollmentInput:
    enrollment_token: str
    code: str = strawberry.field(description="The code the app shows now.")
    label: str | None = strawberry.field(
        default=None, description="Up to 64 characters; 'Authenticator app' when omitted."
    )


@strawberry.input
class RegenerateRecoveryCodesInput:
    current_password: str | None = strawberry.field(default=None, description=_PASSWORD)


@strawberry.input
class RemoveFactorInput:
    current_password: str | None = strawberry.field(default=None, description=_PASSWORD)


@strawberry.input
class RevertSecurityChangeInput:
    token: str = strawberry.field(description="From the link in the notice mail.")


@strawberry.type
class StartTotpEnrollmentSuccess:
    enrollment_token: str = strawberry.field(
        description="For `confirmTotpEnrollment`; valid 10 minutes."
    )
    secret: str = strawberry.field(description="Base32, for typing into the app by hand.")
    otpauth_uri: str
    qr_code_svg: str = strawberry.field(description="The otpauth URI as an inline SVG QR code.")


@strawberry.type
class ConfirmTotpEnrollmentSuccess:
    factor: Factor
    recovery_codes: list[str] | None = strawberry.field(
        description="Ten codes, shown this once, when this factor turned MFA on; else null."
    )


@strawberry.type
class RegenerateRecoveryCodesSuccess:
    recovery_codes: list[str] = strawberry.field(
        description="Shown this once; the old set is void."
    )


@strawberry.type
class RenameFactorSuccess:
    factor: Factor


@strawberry.type
class RemoveFactorSuccess:
    message: str


@strawberry.type
class ResetUserMfaSuccess:
    user: User


@strawberry.type
class RevertSecurityChangeSuccess:
    message: str


VerifyMfaResult = Annotated[
    AuthPayload | InvalidCredentials | InvalidToken | RateLimited | ValidationError,
    strawberry.union("VerifyMfaResult"),
]
StartTotpEnrollmentResult = Annotated[
    StartTotpEnrollmentSuccess | InvalidCredentials | EmailNotVerified | RateLimited,
    strawberry.union("StartTotpEnrollmentResult"),
]
ConfirmTotpEnrollmentResult = Annotated[
    ConfirmTotpEnrollmentSuccess
    | InvalidCredentials
    | InvalidToken
    | ValidationError
    | RateLimited,
    strawberry.union("ConfirmTotpEnrollmentResult"),
]
RegenerateRecoveryCodesResult = Annotated[
    RegenerateRecoveryCodesSuccess | InvalidCredentials | ValidationError | RateLimited,
    strawberry.union("RegenerateRecoveryCodesResult"),
]
RenameFactorResult = Annotated[
    RenameFactorSuccess | NotFound | ValidationError, strawberry.union("RenameFactorResult")
]
RemoveFactorResult = Annotated[
    RemoveFactorSuccess | NotFound | InvalidCredentials | RateLimited,
    strawberry.union("RemoveFactorResult"),
]
ResetUserMfaResult = Annotated[
    ResetUserMfaSuccess | NotFound, strawberry.union("ResetUserMfaResult")
]
RevertSecurityChangeResult = Annotated[
    RevertSecurityChangeSuccess | InvalidToken, strawberry.union("RevertSecurityChangeResult")
]


@strawberry.type
class MfaMutations:
    @mutation(
        "Finish a sign-in that answered `MfaRequired`, with exactly one of an authenticator "
        "app's code, an unused recovery code or a passkey; starts a session at aal 2."
    )
    async def verify_mfa(self, info: GraphQLInfo, input: VerifyMfaInput) -> VerifyMfaResult:
        context = info.context
        client = context.issuing_client()
        async with context.unit_of_work() as uow:
            result = await context.container.second_step.verify(
                uow,
                input.mfa_token,
                client,
                totp_code_given=input.totp_code,
                recovery_code_given=input.recovery_code,
                passkey_given=input.passkey,
            )
        return auth_payload(context, result)

    @mutation(
        "Start adding an authenticator app: a new secret, its otpauth URI and QR code. Needs "
        "a verified address.",
        IsAuthenticated(),
    )
    async def start_totp_enrollment(
        self, info: GraphQLInfo, input: StartTotpEnrollmentInput
    ) -> StartTotpEnrollmentResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            started = await info.context.container.factors.start_totp_enrollment(
                uow, principal, input.current_password
            )
        return StartTotpEnrollmentSuccess(
            enrollment_token=started.token,
            secret=started.secret,
            otpauth_uri=started.uri,
            qr_code_svg=started.qr_code_svg,
        )

    @mutation(
        "Finish adding an authenticator app with a code it shows. The first factor turns MFA "
        "on: recovery codes (once), your other sessions end, this one counts as aal 2.",
        IsAuthenticated(),
    )
    async def confirm_totp_enrollment(
        self, info: GraphQLInfo, input: ConfirmTotpEnrollmentInput
    ) -> ConfirmTotpEnrollmentResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            added = await info.context.container.factors.confirm_totp_enrollment(
                uow, principal, input.enrollment_token, input.code, input.label
            )
        info.context.loaders.forget_factors()
        return ConfirmTotpEnrollmentSuccess(
            factor=Factor.from_row(added.factor), recovery_codes=added.recovery_codes
        )

    @mutation("Ten new recovery codes; the old ones stop working.", IsAuthenticated())
    async def regenerate_recovery_codes(
        self, info: GraphQLInfo, input: RegenerateRecoveryCodesInput
    ) -> RegenerateRecoveryCodesResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            codes = await info.context.container.factors.regenerate_recovery_codes(
                uow, principal, input.current_password
            )
        info.context.loaders.forget_factors()
        return RegenerateRecoveryCodesSuccess(recovery_codes=codes)

    @mutation("Rename one of your factors.", IsAuthenticated())
    async def rename_factor(
        self, info: GraphQLInfo, id: strawberry.ID, label: str
    ) -> RenameFactorResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            factor = await info.context.container.factors.rename(
                uow, principal, parse_id(id, "factor"), label
            )
        info.context.loaders.forget_factors()
        return RenameFactorSuccess(factor=Factor.from_row(factor))

    @mutation(
        "Remove one of your factors; your other sessions end. Removing the last turns MFA off "
        "and voids the recovery codes.",
        IsAuthenticated(),
    )
    async def remove_factor(
        self, info: GraphQLInfo, id: strawberry.ID, input: RemoveFactorInput
    ) -> RemoveFactorResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.factors.remove(
                uow, principal, parse_id(id, "factor"), input.current_password
            )
        info.context.loaders.forget_factors()
        return RemoveFactorSuccess(message="Factor removed.")

    @mutation(
        "Remove every factor and recovery code of a user and end all their sessions; they are "
        "mailed.",
        HasPermission("users:write"),
    )
    async def reset_user_mfa(self, info: GraphQLInfo, user_id: strawberry.ID) -> ResetUserMfaResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.factors.reset(
                uow, principal, parse_id(user_id, "user")
            )
        info.context.loaders.forget_factors()
        return ResetUserMfaSuccess(user=User.from_row(user))

    @mutation(
        'The "this wasn\'t me" link of a notice mail (24 hours): removes the factor or '
        "the linked external account it was about and ends every session. No sign-in needed."
    )
    async def revert_security_change(
        self, info: GraphQLInfo, input: RevertSecurityChangeInput
    ) -> RevertSecurityChangeResult:
        async with info.context.unit_of_work() as uow:
            await info.context.container.revert.revert(uow, input.token)
        return RevertSecurityChangeSuccess(
            message="Done: it was removed and every session ended. Change your password now."
        )
