"""Passkeys: adding one, and signing in with one alone (the second step is `verifyMfa`)."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    ValidationError,
)
from identity.graphql.factors import Factor
from identity.graphql.mutations import mutation
from identity.graphql.mutations.auth import auth_payload
from identity.graphql.permissions import IsAuthenticated
from identity.graphql.types import AuthPayload

_PASSWORD = (
    "Your current password; omit it within IDENTITY_REAUTH_WINDOW (5 minutes by default) "
    "of signing in."
)


@strawberry.input
class StartPasskeyRegistrationInput:
    current_password: str | None = strawberry.field(default=None, description=_PASSWORD)


@strawberry.input
class FinishPasskeyRegistrationInput:
    registration_token: str = strawberry.field(description="From `startPasskeyRegistration`.")
    credential: JSON = strawberry.field(
        description="The JSON of `navigator.credentials.create()` (`credential.toJSON()`)."
    )
    label: str | None = strawberry.field(
        default=None, description="Up to 64 characters; 'Passkey' when omitted."
    )


@strawberry.input
class FinishPasskeyLoginInput:
    challenge_token: str = strawberry.field(description="From `startPasskeyLogin`.")
    credential: JSON = strawberry.field(
        description="The JSON of `navigator.credentials.get()` (`credential.toJSON()`)."
    )


@strawberry.type
class StartPasskeyRegistrationSuccess:
    registration_token: str = strawberry.field(
        description="For `finishPasskeyRegistration`; valid 5 minutes, once."
    )
    options: JSON = strawberry.field(
        description="For `PublicKeyCredential.parseCreationOptionsFromJSON`: a discoverable "
        "credential with user verification, your other passkeys excluded."
    )


@strawberry.type
class FinishPasskeyRegistrationSuccess:
    factor: Factor
    recovery_codes: list[str] | None = strawberry.field(
        description="Ten codes, shown this once, when this passkey turned MFA on; else null."
    )


@strawberry.type
class StartPasskeyLoginSuccess:
    challenge_token: str = strawberry.field(
        description="For `finishPasskeyLogin`; valid 5 minutes, for one answer."
    )
    options: JSON = strawberry.field(
        description="For `PublicKeyCredential.parseRequestOptionsFromJSON` (no "
        "`allowCredentials`: the browser offers the passkeys it has for this site)."
    )


StartPasskeyRegistrationResult = Annotated[
    StartPasskeyRegistrationSuccess | InvalidCredentials | EmailNotVerified | RateLimited,
    strawberry.union("StartPasskeyRegistrationResult"),
]
FinishPasskeyRegistrationResult = Annotated[
    FinishPasskeyRegistrationSuccess | InvalidToken | ValidationError,
    strawberry.union("FinishPasskeyRegistrationResult"),
]
StartPasskeyLoginResult = Annotated[
    StartPasskeyLoginSuccess | RateLimited, strawberry.union("StartPasskeyLoginResult")
]
FinishPasskeyLoginResult = Annotated[
    AuthPayload
    | InvalidCredentials
    | InvalidToken
    | AccountDisabled
    | EmailNotVerified
    | RateLimited
    | ValidationError,
    strawberry.union("FinishPasskeyLoginResult"),
]


@strawberry.type
class PasskeyMutations:
    @mutation(
        "Start adding a passkey: WebAuthn creation options. Needs a verified address.",
        IsAuthenticated(),
    )
    async def start_passkey_registration(
        self, info: GraphQLInfo, input: StartPasskeyRegistrationInput
    ) -> StartPasskeyRegistrationResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            started = await info.context.container.passkeys.start_registration(
                uow, principal, input.current_password
            )
        return StartPasskeyRegistrationSuccess(
            registration_token=started.token,
            options=started.options,  # type: ignore[arg-type]  # JSON is Any at runtime
        )

    @mutation(
        "Finish adding a passkey with the browser's answer. The first factor turns MFA on: "
        "recovery codes (once), your other sessions end, this one counts as aal 2.",
        IsAuthenticated(),
    )
    async def finish_passkey_registration(
        self, info: GraphQLInfo, input: FinishPasskeyRegistrationInput
    ) -> FinishPasskeyRegistrationResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            added = await info.context.container.passkeys.finish_registration(
                uow, principal, input.registration_token, input.credential, input.label
            )
        info.context.loaders.forget_factors()
        return FinishPasskeyRegistrationSuccess(
            factor=Factor.from_row(added.factor), recovery_codes=added.recovery_codes
        )

    @mutation("Start signing in with a passkey alone: WebAuthn request options, no email.")
    async def start_passkey_login(self, info: GraphQLInfo) -> StartPasskeyLoginResult:
        context = info.context
        async with context.unit_of_work() as uow:
            started = await context.container.passkeys.start_login(uow, context.client)
        return StartPasskeyLoginSuccess(
            challenge_token=started.token,
            options=started.options,  # type: ignore[arg-type]  # JSON is Any at runtime
        )

    @mutation(
        "Finish signing in with a passkey: starts a session at aal 2 (amr hwk, user). Wrong "
        "passwords never block it, and it never counts towards their lock-out."
    )
    async def finish_passkey_login(
        self, info: GraphQLInfo, input: FinishPasskeyLoginInput
    ) -> FinishPasskeyLoginResult:
        context = info.context
        client = context.issuing_client()
        async with context.unit_of_work() as uow:
            result = await context.container.passkeys.finish_login(
                uow, input.challenge_token, input.credential, client
            )
        return auth_payload(context, result)
