"""Helpers for the tests of sign-in with other providers (against tests/fake_provider.py)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from identity.container import Container
from identity.security.oidc_client import s256
from identity.security.oidc_providers import WELL_KNOWN
from tests.conftest import GraphQLClient
from tests.fake_provider import CLIENT_ID, CLIENT_SECRET, ISSUER, Account, FakeProvider

RETURN_TO = "http://app.example.test/signed-in"
PROVIDERS = [
    {
        "id": "acme",
        "name": "Acme",
        "discovery_url": ISSUER + WELL_KNOWN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    },
    # A preset: listed, never contacted.
    {"id": "google", "client_id": "google-client", "client_secret": "google-secret"},
]
OVERRIDES = {"oidc_providers": PROVIDERS, "oidc_return_urls": [RETURN_TO, "http://other.test/"]}

START = """
mutation($input: StartExternalLoginInput!) {
  startExternalLogin(input: $input) {
    __typename
    ... on StartExternalLoginSuccess { authorizationUrl }
    ... on ValidationError { fields { field code } }
    ... on Error { message }
  }
}
"""
FINISH = """
mutation($input: FinishExternalLoginInput!) {
  finishExternalLogin(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken user { id email firstName lastName isVerified roles { name } } }
    ... on MfaRequired { mfaToken methods }
    ... on RateLimited { retryAfter }
    ... on Error { message }
  }
}
"""
LINK = """
mutation($input: FinishExternalLoginInput!) {
  linkExternalAccount(input: $input) {
    __typename
    ... on LinkExternalAccountSuccess { externalAccount { id provider email linkedAt } }
    ... on Error { message }
  }
}
"""
UNLINK = """
mutation($id: ID!) {
  unlinkExternalAccount(id: $id) {
    __typename
    ... on UnlinkExternalAccountSuccess { message }
    ... on ValidationError { fields { field code message } }
    ... on Error { message }
  }
}
"""
MY_ACCOUNTS = "{ me { id externalAccounts { id provider email } sessions { current aal amr } } }"


def use_fake_provider(container: Container, **knobs: Any) -> FakeProvider:
    """identity talks to a provider in this process from now on."""
    fake = FakeProvider(**knobs)
    container.providers.use_http(fake.http())
    return fake


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


async def start(
    gql: GraphQLClient,
    verifier: str,
    *,
    provider: str = "acme",
    return_to: str = RETURN_TO,
    link: bool = False,
    token: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    data = {
        "provider": provider,
        "returnTo": return_to,
        "codeChallenge": s256(verifier),
        "link": link,
        "currentPassword": password,
    }
    result: dict[str, Any] = (await gql(START, {"input": data}, token=token))["data"][
        "startExternalLogin"
    ]
    return result


def fragment(response: httpx.Response) -> dict[str, str]:
    """What identity's callback put in the fragment of the app's returnTo."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(RETURN_TO + "#") or location.startswith("http://other.test/#")
    assert response.headers["cache-control"] == "no-store"
    return {k: v[0] for k, v in parse_qs(location.partition("#")[2]).items()}


async def returned(http: httpx.AsyncClient, callback_url: str) -> dict[str, str]:
    assert urlsplit(callback_url).path.startswith("/login/external/")
    return fragment(await http.get(callback_url))


async def code_for(
    gql: GraphQLClient,
    provider: FakeProvider,
    account: Account,
    *,
    link: bool = False,
    token: str | None = None,
    password: str | None = None,
) -> tuple[str, str]:
    """The whole way through the provider: (verifier, one-time code)."""
    verifier = new_verifier()
    started = await start(gql, verifier, link=link, token=token, password=password)
    assert started["__typename"] == "StartExternalLoginSuccess", started
    back = await returned(gql.http, provider.authorize(started["authorizationUrl"], account))
    assert "code" in back, back
    return verifier, back["code"]


async def finish(gql: GraphQLClient, code: str, verifier: str) -> dict[str, Any]:
    variables = {"input": {"code": code, "codeVerifier": verifier}}
    result: dict[str, Any] = (await gql(FINISH, variables))["data"]["finishExternalLogin"]
    return result


async def link(gql: GraphQLClient, code: str, verifier: str, token: str) -> dict[str, Any]:
    variables = {"input": {"code": code, "codeVerifier": verifier}}
    result: dict[str, Any] = (await gql(LINK, variables, token=token))["data"][
        "linkExternalAccount"
    ]
    return result


async def signed_in_with(
    gql: GraphQLClient, provider: FakeProvider, account: Account
) -> dict[str, Any]:
    verifier, code = await code_for(gql, provider, account)
    return await finish(gql, code, verifier)
