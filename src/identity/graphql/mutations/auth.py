"""Signing up, in and out, and staying signed in."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.context import Context, GraphQLInfo
from identity.graphql.cookies import clear_refresh_cookie, refresh_token_from, set_refresh_cookie
from identity.graphql.errors import (
    AccountDisabled,
    EmailAlreadyRegistered,
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    ValidationError,
)
from identity.graphql.factors import MfaMethod, MfaRequired
from identity.graphql.mutations import mutation
from identity.graphql.types import AuthPayload, User
from identity.services.accounts import Registration
from identity.services.auth import AuthResult, MfaPending
from identity.services.errors import InvalidToken as InvalidTokenError


@strawberry.input
class RegisterInput:
    email: str
    password: str
    first_name: str
    last_name: str


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.input
class RefreshTokenInput:
    refresh_token: str | None = strawberry.field(
        default=None, description="The refresh token; omit it in cookie mode."
    )


@strawberry.input
class LogoutInput:
    refresh_token: str | None = strawberry.field(
        default=None, description="The refresh token; omit it in cookie mode."
    )


@strawberry.type
class RegisterSuccess:
    user: User


@strawberry.type
class LogoutSuccess:
    message: str


RegisterResult = Annotated[
    RegisterSuccess | ValidationError | EmailAlreadyRegistered | RateLimited,
    strawberry.union("RegisterResult"),
]
LoginResult = Annotated[
    AuthPayload
    | MfaRequired
    | InvalidCredentials
    | AccountDisabled
    | EmailNotVerified
    | RateLimited
    | ValidationError,
    strawberry.union("LoginResult"),
]
RefreshTokenResult = Annotated[AuthPayload | InvalidToken, strawberry.union("RefreshTokenResult")]
LogoutResult = Annotated[LogoutSuccess | InvalidToken, strawberry.union("LogoutResult")]


def auth_payload(context: Context, result: AuthResult) -> AuthPayload:
    context.loaders.known_roles[result.user.id] = result.roles
    settings = context.container.settings
    refresh_token: str | None = result.refresh_token
    if settings.refresh_cookie:
        now = context.container.runtime.clock.now()
        set_refresh_cookie(
            context.response, settings, result.refresh_token, result.session_ends, now
        )
        refresh_token = None  # it travels only as the HttpOnly cookie
    return AuthPayload(
        access_token=result.access_token,
        token_type="Bearer" if result.dpop_jkt is None else "DPoP",
        expires_in=result.expires_in,
        user=User.from_row(result.user),
        refresh_token=refresh_token,
    )


def mfa_required(pending: MfaPending) -> MfaRequired:
    return MfaRequired(
        mfa_token=pending.mfa_token,
        methods=[MfaMethod(method) for method in pending.methods],
        expires_in=pending.expires_in,
        passkey_options=pending.passkey_options,  # type: ignore[arg-type]  # JSON is Any at runtime
    )


@strawberry.type
class AuthMutations:
    @mutation("Create an account with the `user` role.")
    async def register(self, info: GraphQLInfo, input: RegisterInput) -> RegisterResult:
        data = Registration(
            email=input.email,
            password=input.password,
            first_name=input.first_name,
            last_name=input.last_name,
        )
        async with info.context.unit_of_work() as uow:
            user = await info.context.container.accounts.register(uow, data)
        return RegisterSuccess(user=User.from_row(user))

    @mutation(
        "Sign in with email and password; starts a session, or, with MFA on, answers "
        "`MfaRequired` (finish with `verifyMfa`)."
    )
    async def login(self, info: GraphQLInfo, input: LoginInput) -> LoginResult:
        context = info.context
        client = context.issuing_client()
        async with context.unit_of_work() as uow:
            result = await context.container.auth.login(uow, input.email, input.password, client)
        if isinstance(result, MfaPending):
            return mfa_required(result)
        return auth_payload(context, result)

    @mutation("Trade a refresh token for new tokens; the refresh token is rotated.")
    async def refresh_token(
        self, info: GraphQLInfo, input: RefreshTokenInput
    ) -> RefreshTokenResult:
        context = info.context
        settings = context.container.settings
        token = refresh_token_from(context.request, settings, input.refresh_token)
        proof = context.issuing_client().dpop
        try:
            async with context.unit_of_work() as uow:
                result = await context.container.refresh.refresh(uow, token, proof)
        except InvalidTokenError:
            if settings.refresh_cookie and input.refresh_token is None:
                clear_refresh_cookie(context.response, settings)
            raise
        return auth_payload(context, result)

    @mutation("End the session the refresh token belongs to.")
    async def logout(self, info: GraphQLInfo, input: LogoutInput) -> LogoutResult:
        context = info.context
        settings = context.container.settings
        token = refresh_token_from(context.request, settings, input.refresh_token)
        if settings.refresh_cookie:
            clear_refresh_cookie(context.response, settings)  # whatever the outcome
        proof = context.key_proof()  # a DPoP-bound session ends only with its key
        async with context.unit_of_work() as uow:
            await context.container.refresh.logout(uow, token, proof)
        return LogoutSuccess(message="Signed out.")
