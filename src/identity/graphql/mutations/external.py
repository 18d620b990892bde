"""Sign-in with other providers: start, finish, link and unlink."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import (
    AccountDisabled,
    EmailNotVerified,
    ExternalAccountConflict,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    RateLimited,
    ValidationError,
)
from identity.graphql.external import ExternalAccount
from identity.graphql.factors import MfaRequired
from identity.graphql.mutations import mutation, parse_id
from identity.graphql.mutations.auth import auth_payload, mfa_required
from identity.graphql.permissions import IsAuthenticated
from identity.graphql.types import AuthPayload
from identity.services.auth import MfaPending


@strawberry.input
class StartExternalLoginInput:
    provider: str = strawberry.field(description="An id from `externalProviders`.")
    return_to: str = strawberry.field(
        description="Where the browser comes back with `#code=…` (or `#error=…`): exactly "
        "one of IDENTITY_OIDC_RETURN_URLS."
    )
    code_challenge: str = strawberry.field(
        description="BASE64URL(SHA-256(verifier)) of a random verifier (43 to 128 characters) "
        "that the app keeps for `finishExternalLogin`."
    )
    link: bool = strawberry.field(
        default=False,
        description="Link the provider's account to the signed-in caller instead of signing "
        "in (needs re-authentication); the code then serves `linkExternalAccount` only.",
    )
    current_password: str | None = strawberry.field(
        default=None,
        description="With `link`: your current password; omit it within "
        "IDENTITY_REAUTH_WINDOW of signing in.",
    )


@strawberry.input
class FinishExternalLoginInput:
    code: str = strawberry.field(description="From the fragment of `returnTo`: `#code=…`.")
    code_verifier: str = strawberry.field(description="The verifier of the start's challenge.")


@strawberry.type
class StartExternalLoginSuccess:
    authorization_url: str = strawberry.field(
        description="Send the browser here (a top-level navigation)."
    )


@strawberry.type
class LinkExternalAccountSuccess:
    external_account: ExternalAccount


@strawberry.type
class UnlinkExternalAccountSuccess:
    message: str


StartExternalLoginResult = Annotated[
    StartExternalLoginSuccess | ValidationError | InvalidCredentials | RateLimited,
    strawberry.union("StartExternalLoginResult"),
]
FinishExternalLoginResult = Annotated[
    AuthPayload
    | MfaRequired
    | ExternalAccountConflict
    | EmailNotVerified
    | InvalidToken
    | AccountDisabled
    | RateLimited,
    strawberry.union("FinishExternalLoginResult"),
]
LinkExternalAccountResult = Annotated[
    LinkExternalAccountSuccess | ExternalAccountConflict | InvalidToken,
    strawberry.union("LinkExternalAccountResult"),
]
UnlinkExternalAccountResult = Annotated[
    UnlinkExternalAccountSuccess | NotFound | ValidationError,
    strawberry.union("UnlinkExternalAccountResult"),
]


@strawberry.type
class ExternalMutations:
    @mutation(
        "Start signing in with another provider (or, with `link`, linking one to your "
        "account): the URL to send the browser to. No sign-in needed, except to link."
    )
    async def start_external_login(
        self, info: GraphQLInfo, input: StartExternalLoginInput
    ) -> StartExternalLoginResult:
        context = info.context
        principal = await context.require_principal() if input.link else None
        async with context.unit_of_work() as uow:
            url = await context.container.external_login.start(
                uow,
                principal,
                provider=input.provider,
                return_to=input.return_to,
                code_challenge=input.code_challenge,
                link=input.link,
                password=input.current_password,
            )
        return StartExternalLoginSuccess(authorization_url=url)

    @mutation(
        "Finish a sign-in with another provider: the code from `returnTo` and the app's "
        "verifier. Starts a session (amr fed, aal 1), or answers `MfaRequired`."
    )
    async def finish_external_login(
        self, info: GraphQLInfo, input: FinishExternalLoginInput
    ) -> FinishExternalLoginResult:
        context = info.context
        client = context.issuing_client()
        async with context.unit_of_work() as uow:
            result = await context.container.external_accounts.finish(
                uow, input.code, input.code_verifier, client
            )
        if isinstance(result, MfaPending):
            return mfa_required(result)
        return auth_payload(context, result)

    @mutation(
        "Link the provider's account of a `link: true` start of yours to your account; a "
        "notice with an undo link is mailed.",
        IsAuthenticated(),
    )
    async def link_external_account(
        self, info: GraphQLInfo, input: FinishExternalLoginInput
    ) -> LinkExternalAccountResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            account = await info.context.container.external_accounts.link(
                uow, principal, input.code, input.code_verifier
            )
        info.context.loaders.forget_external_accounts()
        return LinkExternalAccountSuccess(external_account=ExternalAccount.from_row(account))

    @mutation(
        "Unlink one of your external accounts; never your last way to sign in.",
        IsAuthenticated(),
    )
    async def unlink_external_account(
        self, info: GraphQLInfo, id: strawberry.ID
    ) -> UnlinkExternalAccountResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.external_accounts.unlink(
                uow, principal, parse_id(id, "external account")
            )
        info.context.loaders.forget_external_accounts()
        return UnlinkExternalAccountSuccess(message="External account unlinked.")
