"""Domain errors: what a use case can refuse, in words a client can act on.

Services raise them; the GraphQL layer maps each to the union member of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    code: str
    message: str


class ValidationFailed(DomainError):
    message = "Some fields are invalid."

    def __init__(self, fields: list[FieldProblem]) -> None:
        super().__init__()
        self.fields = fields

    @classmethod
    def one(cls, field: str, code: str, message: str) -> ValidationFailed:
        return cls([FieldProblem(field=field, code=code, message=message)])


class InvalidCredentials(DomainError):
    message = "The email or password is incorrect."


class AccountDisabled(DomainError):
    message = "This account is disabled."


class EmailNotVerified(DomainError):
    message = "Verify your email address before signing in."


class EmailAlreadyRegistered(DomainError):
    message = "An account with this email address already exists."


class InvalidToken(DomainError):
    message = "The token is invalid or has expired."


class ExternalAccountConflict(DomainError):
    message = (
        "An account with this email address already exists: sign in to it, then link this "
        "sign-in method in its settings."
    )


class NotFound(DomainError):
    message = "Not found."


class LastAdmin(DomainError):
    message = "The last active admin cannot lose the admin role, be deactivated or be deleted."


class PermissionDenied(DomainError):
    """The caller holds the operation's permission, but not enough for this target.

    Not a result-union member: the GraphQL layer answers it with a FORBIDDEN error.
    """

    message = "Forbidden: you cannot act on what you could not grant yourself."


class MfaRequired(PermissionDenied):
    """The permission comes from a role that requires MFA, and the session has one factor.

    Not a result-union member: the GraphQL layer answers it with an MFA_REQUIRED error, so a
    client can send the user to add a second factor (enrolling raises the session at once).
    """

    message = "This needs a second factor: sign in with one, or add one to your account."


class ProofReplayed(DomainError):
    """The request's DPoP proof was used before (GraphQL: INVALID_DPOP_PROOF)."""

    message = "The DPoP proof is not usable: this proof was used already."


class SignedOut(DomainError):
    """The caller's account went away during the request (GraphQL: UNAUTHENTICATED)."""

    message = "Your account no longer exists."


class PasskeysOff(DomainError):
    """Production without IDENTITY_WEBAUTHN_RP_ID: no relying party, no passkeys.

    Not a result-union member: the GraphQL layer answers it with a PASSKEYS_OFF error.
    """

    message = "Passkeys are not enabled on this server."


class RateLimited(DomainError):
    message = "Too many attempts. Try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = max(1, retry_after)
