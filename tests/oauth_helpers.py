"""Helpers for the OpenID Provider tests: clients, PKCE, the hosted pages' forms."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

from tests.conftest import GraphQLClient, SignedIn

CREATE_CLIENT = """
mutation($input: CreateOAuthClientInput!) {
  createOAuthClient(input: $input) {
    __typename
    ... on CreateOAuthClientSuccess {
      client { id clientId name redirectUris isConfidential isFirstParty allowedScopes createdAt }
      clientSecret
    }
    ... on ValidationError { fields { field code message } }
  }
}
"""
REDIRECT = "https://wiki.example.com/callback"


async def create_client(
    gql: GraphQLClient, admin: SignedIn, **fields: Any
) -> tuple[dict[str, Any], str | None]:
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


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a hosted page's form."""
    fields = {}
    for tag in re.findall(r"<input [^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="hidden"' in tag:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields
