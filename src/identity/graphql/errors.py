"""Error types of the contract, and the one place where domain errors become them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField
from strawberry.types.union import StrawberryUnion

from identity.services import errors as domain


@strawberry.interface(
    description="Something the client can fix or wait out; `message` is for people."
)
class Error:
    message: str


@strawberry.type(description="One invalid input field.")
class FieldError:
    field: str = strawberry.field(description="The input field, named as in the input.")
    message: str
    code: str = strawberry.field(description="Stable snake_case code, e.g. `too_short`.")


@strawberry.type(description="Every invalid field of the input, at once.")
class ValidationError(Error):
    fields: list[FieldError]


@strawberry.type(description="Too many attempts; try again after `retryAfter` seconds.")
class RateLimited(Error):
    retry_after: int


@strawberry.type(description="Unknown email or wrong password (one message for both).")
class InvalidCredentials(Error):
    pass


@strawberry.type(description="The password was right but the account is deactivated.")
class AccountDisabled(Error):
    pass


@strawberry.type(description="The password was right but the address is not verified yet.")
class EmailNotVerified(Error):
    pass


@strawberry.type(description="Another account uses this email address.")
class EmailAlreadyRegistered(Error):
    pass


@strawberry.type(description="Unknown, expired, used, revoked or wrong-purpose token.")
class InvalidToken(Error):
    pass


@strawberry.type(
    description="The provider's address belongs to an account here (sign in to it and link), "
    "or, when linking, the external account is linked to another user."
)
class ExternalAccountConflict(Error):
    pass


@strawberry.type(description="No such object.")
class NotFound(Error):
    pass


@strawberry.type(
    description="The last active admin cannot lose the role, be deactivated or deleted."
)
class LastAdmin(Error):
    pass


def _validation(exc: domain.DomainError) -> ValidationError:
    assert isinstance(exc, domain.ValidationFailed)
    return ValidationError(
        message=exc.message,
        fields=[FieldError(field=f.field, message=f.message, code=f.code) for f in exc.fields],
    )


def _rate_limited(exc: domain.DomainError) -> RateLimited:
    assert isinstance(exc, domain.RateLimited)
    return RateLimited(message=exc.message, retry_after=exc.retry_after)


_TO_GRAPHQL: dict[type[domain.DomainError], Callable[[domain.DomainError], Error]] = {
    domain.ValidationFailed: _validation,
    domain.RateLimited: _rate_limited,
    domain.InvalidCredentials: lambda e: InvalidCredentials(message=e.message),
    domain.AccountDisabled: lambda e: AccountDisabled(message=e.message),
    domain.EmailNotVerified: lambda e: EmailNotVerified(message=e.message),
    domain.EmailAlreadyRegistered: lambda e: EmailAlreadyRegistered(message=e.message),
    domain.InvalidToken: lambda e: InvalidToken(message=e.message),
    domain.NotFound: lambda e: NotFound(message=e.message),
    domain.ExternalAccountConflict: lambda e: ExternalAccountConflict(message=e.message),
    domain.LastAdmin: lambda e: LastAdmin(message=e.message),
}


class DomainErrors(FieldExtension):
    """Turns a domain error into the union member of the same name.

    An error that is not a member of the field's union is a bug, not a client mistake: it
    propagates and is masked like any unexpected exception.
    """

    def apply(self, field: StrawberryField) -> None:
        union = field.type
        if not isinstance(union, StrawberryUnion):
            raise TypeError(f"{field.python_name}: DomainErrors needs a union result type")
        self.members: set[object] = set()
        for member in union.types:
            definition = getattr(member, "__strawberry_definition__", None)
            if isinstance(definition, StrawberryObjectDefinition):
                self.members.add(member)

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: strawberry.Info,
        **kwargs: Any,
    ) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except domain.MfaRequired as exc:
            raise mfa_required(exc.message) from None
        except domain.PermissionDenied as exc:
            raise forbidden(exc.message) from None
        except domain.PasskeysOff as exc:
            raise GraphQLError(exc.message, extensions={"code": "PASSKEYS_OFF"}) from None
        except domain.SignedOut as exc:
            raise GraphQLError(exc.message, extensions={"code": "UNAUTHENTICATED"}) from None
        except domain.ProofReplayed as exc:
            raise GraphQLError(exc.message, extensions={"code": "INVALID_DPOP_PROOF"}) from None
        except domain.DomainError as exc:
            result = _TO_GRAPHQL[type(exc)](exc)
            if type(result) not in self.members:
                raise
            info.context.outcome = type(result).__name__
            return result


def bad_user_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def mfa_required(message: str = domain.MfaRequired.message) -> GraphQLError:
    """Signed in with one factor; a role that requires MFA would allow it."""
    return GraphQLError(message, extensions={"code": "MFA_REQUIRED"})
