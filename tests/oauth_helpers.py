"""Helpers for the OpenID Provider tests: clients, PKCE, the hosted pages' forms."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import PASSWORD, GraphQLClient, SignedIn

CREATE_CLIENT = """
mutation($input: CreateOAuthClientInput!) {
  createOAuthClient(input: $input) {
    __typename
    ... on CreateOAuthClientSuccess {
      client { id clientId name redirectUris postLogoutRedirectUris isConfidential isFirstParty allowedScopes createdAt }
      clientSecret
    }
    ... on ValidationError { fields { field code message } }
  }
}
"""
REDIRECT = "https://wiki.example.com/callback"


async def create_client(
    gql: GraphQLClient, admin: SignedIn, **fields: Any
) -> tuple[dict[str, Any], Any]:
    """The client and its secret (None for a public client)."""
    values = {
        "name": "Team wiki",
        "redirectUris": [REDIRECT],
        "isConfidential": True,
        "isFirstParty": False,
        "allowedScopes": ["wiki:read"],
        **fields,
    }
    result = (await gql(CREATE_CLIENT, {"input": values}, token=admin.access_token))["data"][
        "createOAuthClient"
    ]
    assert result["__typename"] == "CreateOAuthClientSuccess", result
    client: dict[str, Any] = result["client"]
    return client, result["clientSecret"]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def form_fields(html: str, form: int = 0) -> dict[str, str]:
    """The hidden inputs of a hosted page's form (the first; the passkey form is the next)."""
    fields = {}
    forms = re.findall(r"<form .*?</form>", html, re.S)
    for tag in re.findall(r"<input [^>]*>", forms[form] if forms else html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="hidden"' in tag:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


async def authorize(
    http: httpx.AsyncClient, app_id: str, challenge: str, **extra: str
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": app_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile email offline_access",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return await http.get("/oauth2/authorize", params=params)


async def submit(http: httpx.AsyncClient, page: httpx.Response, **fields: str) -> httpx.Response:
    return await http.post("/oauth2/authorize", data={**form_fields(page.text), **fields})


def code_of(response: httpx.Response) -> str:
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def sign_in_and_consent(
    http: httpx.AsyncClient, client_id: str, challenge: str, email: str = "ann@example.com"
) -> str:
    login_page = await authorize(http, client_id, challenge)
    assert login_page.status_code == 200, login_page.text
    consent_page = await submit(http, login_page, email=email, password=PASSWORD)
    assert "would like to" in consent_page.text, consent_page.text
    return code_of(await submit(http, consent_page, decision="allow"))


async def exchange(
    http: httpx.AsyncClient,
    client_id: str,
    secret: str | None,
    code: str,
    verifier: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    if secret is None:
        return await http.post(
            "/oauth2/token", data={**data, "client_id": client_id}, headers=headers
        )
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret), headers=headers)
