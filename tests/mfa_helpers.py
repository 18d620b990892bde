"""Helpers for the second-factor tests: a verified user, an enrolled authenticator app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import func, select, update

from identity.clock import FrozenClock
from identity.container import Container
from identity.db import models
from identity.security import totp
from tests.conftest import PASSWORD, GraphQLClient, SignedIn, signed_up

START = """
mutation($password: String) {
  startTotpEnrollment(input: {currentPassword: $password}) {
    __typename
    ... on StartTotpEnrollmentSuccess { enrollmentToken secret otpauthUri qrCodeSvg }
    ... on Error { message }
  }
}
"""
CONFIRM = """
mutation($input: ConfirmTotpEnrollmentInput!) {
  confirmTotpEnrollment(input: $input) {
    __typename
    ... on ConfirmTotpEnrollmentSuccess { factor { id kind label createdAt lastUsedAt } recoveryCodes }
    ... on ValidationError { fields { field code } }
    ... on Error { message }
  }
}
"""
VERIFY_MFA = """
mutation($input: VerifyMfaInput!) {
  verifyMfa(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken tokenType user { id email } }
    ... on ValidationError { fields { field code } }
    ... on RateLimited { retryAfter }
    ... on Error { message }
  }
}
"""
LOGIN_STEP = """
mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken }
    ... on MfaRequired { mfaToken methods expiresIn }
    ... on RateLimited { retryAfter }
    ... on Error { message }
  }
}
"""
MY_FACTORS = """
{ me { mfaEnabled recoveryCodesLeft factors { id kind label lastUsedAt }
       sessions { id current aal amr } } }
"""


@dataclass
class Enrolled:
    user: SignedIn
    secret: str
    factor_id: str
    recovery_codes: list[str]


async def verified_user(
    gql: GraphQLClient, container: Container, email: str = "ann@example.com"
) -> SignedIn:
    """Signed up and signed in, with the address marked verified (factors need one)."""
    user = await signed_up(gql, email)
    await set_verified(container, email)
    return user


async def start_enrollment(
    gql: GraphQLClient, token: str, password: str | None = PASSWORD
) -> dict[str, Any]:
    result = (await gql(START, {"password": password}, token=token))["data"]["startTotpEnrollment"]
    assert isinstance(result, dict)
    return result


async def confirm(
    gql: GraphQLClient, token: str, enrollment_token: str, code: str, label: str | None = None
) -> dict[str, Any]:
    variables = {"input": {"enrollmentToken": enrollment_token, "code": code, "label": label}}
    result = (await gql(CONFIRM, variables, token=token))["data"]["confirmTotpEnrollment"]
    assert isinstance(result, dict)
    return result


async def enroll(
    gql: GraphQLClient, user: SignedIn, clock: FrozenClock, label: str | None = None
) -> Enrolled:
    started = await start_enrollment(gql, user.access_token)
    assert started["__typename"] == "StartTotpEnrollmentSuccess", started
    secret = started["secret"]
    done = await confirm(
        gql, user.access_token, started["enrollmentToken"], totp.code_at(secret, clock.now()), label
    )
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess", done
    clock.advance(30)  # the next code is a new time step
    return Enrolled(
        user=user,
        secret=secret,
        factor_id=done["factor"]["id"],
        recovery_codes=done["recoveryCodes"] or [],
    )


async def mfa_login(
    gql: GraphQLClient, email: str = "ann@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    variables = {"input": {"email": email, "password": password}}
    result = (await gql(LOGIN_STEP, variables))["data"]["login"]
    assert isinstance(result, dict)
    return result


async def verify(gql: GraphQLClient, mfa_token: str, **codes: Any) -> dict[str, Any]:
    variables = {"input": {"mfaToken": mfa_token, **codes}}
    result = (await gql(VERIFY_MFA, variables))["data"]["verifyMfa"]
    assert isinstance(result, dict)
    return result


async def sign_in_with_code(
    gql: GraphQLClient, secret: str, clock: FrozenClock, email: str = "ann@example.com"
) -> SignedIn:
    step = await mfa_login(gql, email)
    assert step["__typename"] == "MfaRequired", step
    done = await verify(gql, step["mfaToken"], totpCode=totp.code_at(secret, clock.now()))
    assert done["__typename"] == "AuthPayload", done
    clock.advance(30)
    return SignedIn(
        user_id=done["user"]["id"],
        email=done["user"]["email"],
        access_token=done["accessToken"],
        refresh_token=done["refreshToken"],
    )


def claims(access_token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return decoded


async def live_sessions(container: Container, user_id: str) -> int:
    """How many sessions of the user have not been ended."""
    stmt = (
        select(func.count())
        .select_from(models.Session)
        .where(models.Session.user_id == uuid.UUID(user_id), models.Session.revoked_at.is_(None))
    )
    async with container.reads() as db:
        return int(await db.scalar(stmt) or 0)


async def set_verified(container: Container, email: str) -> None:
    async with container.writes() as db:
        await db.execute(
            update(models.User).where(models.User.email == email).values(is_verified=True)
        )
        await db.commit()
