"""Helpers for the passkey tests: the operations, and a passkey added through them."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD, GraphQLClient
from tests.webauthn_authenticator import SoftAuthenticator

START_REGISTRATION = """
mutation($password: String) {
  startPasskeyRegistration(input: {currentPassword: $password}) {
    __typename
    ... on StartPasskeyRegistrationSuccess { registrationToken options }
    ... on Error { message }
  }
}
"""
FINISH_REGISTRATION = """
mutation($input: FinishPasskeyRegistrationInput!) {
  finishPasskeyRegistration(input: $input) {
    __typename
    ... on FinishPasskeyRegistrationSuccess { factor { id kind label } recoveryCodes }
    ... on ValidationError { fields { field code } }
    ... on Error { message }
  }
}
"""
START_LOGIN = """
mutation { startPasskeyLogin { __typename
  ... on StartPasskeyLoginSuccess { challengeToken options }
  ... on RateLimited { retryAfter } } }
"""
FINISH_LOGIN = """
mutation($input: FinishPasskeyLoginInput!) {
  finishPasskeyLogin(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken user { id email } }
    ... on ValidationError { fields { field code } }
    ... on RateLimited { retryAfter }
    ... on Error { message }
  }
}
"""
MFA_LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on MfaRequired { mfaToken methods passkeyOptions }
    ... on Error { message }
  }
}
"""


async def start_registration(
    gql: GraphQLClient, token: str, password: str | None = PASSWORD
) -> dict[str, Any]:
    result = await gql(START_REGISTRATION, {"password": password}, token=token)
    started: dict[str, Any] = result["data"]["startPasskeyRegistration"]
    return started


async def finish_registration(
    gql: GraphQLClient,
    token: str,
    registration_token: str,
    credential: Any,
    label: str | None = None,
) -> dict[str, Any]:
    variables = {
        "input": {"registrationToken": registration_token, "credential": credential, "label": label}
    }
    result = await gql(FINISH_REGISTRATION, variables, token=token)
    finished: dict[str, Any] = result["data"]["finishPasskeyRegistration"]
    return finished


async def add_passkey(
    gql: GraphQLClient, token: str, authenticator: SoftAuthenticator, label: str | None = None
) -> dict[str, Any]:
    started = await start_registration(gql, token)
    assert started["__typename"] == "StartPasskeyRegistrationSuccess", started
    credential = authenticator.create(started["options"])
    done = await finish_registration(gql, token, started["registrationToken"], credential, label)
    assert done["__typename"] == "FinishPasskeyRegistrationSuccess", done
    return done


async def start_login(gql: GraphQLClient) -> dict[str, Any]:
    started: dict[str, Any] = (await gql(START_LOGIN))["data"]["startPasskeyLogin"]
    return started


async def finish_login(gql: GraphQLClient, challenge_token: str, credential: Any) -> dict[str, Any]:
    variables = {"input": {"challengeToken": challenge_token, "credential": credential}}
    finished: dict[str, Any] = (await gql(FINISH_LOGIN, variables))["data"]["finishPasskeyLogin"]
    return finished


async def passkey_login(
    gql: GraphQLClient, authenticator: SoftAuthenticator, **answer: Any
) -> dict[str, Any]:
    started = await start_login(gql)
    assert started["__typename"] == "StartPasskeyLoginSuccess", started
    credential = authenticator.get(started["options"], **answer)
    return await finish_login(gql, started["challengeToken"], credential)


async def password_step(gql: GraphQLClient, email: str = "ann@example.com") -> dict[str, Any]:
    variables = {"input": {"email": email, "password": PASSWORD}}
    step: dict[str, Any] = (await gql(MFA_LOGIN, variables))["data"]["login"]
    return step
