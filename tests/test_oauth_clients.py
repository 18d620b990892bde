"""OAuth clients through GraphQL: create, list, update, rotate, delete, and who may."""

from __future__ import annotations

import pytest

from identity.container import Container
from tests.admin_helpers import make_admin, user_with
from tests.conftest import GraphQLClient, row_counts, scalar
from tests.oauth_helpers import CREATE_CLIENT, REDIRECT, create_client

LIST = (
    "{ oauthClients { id clientId name redirectUris isConfidential isFirstParty allowedScopes } }"
)
UPDATE = """
mutation($id: ID!, $input: UpdateOAuthClientInput!) {
  updateOAuthClient(id: $id, input: $input) {
    __typename
    ... on UpdateOAuthClientSuccess { client { name redirectUris postLogoutRedirectUris allowedScopes } }
    ... on ValidationError { fields { field code } }
    ... on NotFound { message }
  }
}
"""
ROTATE = """
mutation($id: ID!) {
  rotateOAuthClientSecret(id: $id) {
    __typename ... on RotateOAuthClientSecretSuccess { clientSecret } ... on NotFound { message }
  }
}
"""
DELETE = """
mutation($id: ID!) {
  deleteOAuthClient(id: $id) {
    __typename ... on DeleteOAuthClientSuccess { message } ... on NotFound { message }
  }
}
"""


async def test_create_list_rotate_delete(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    client, secret = await create_client(gql, admin)
    assert secret is not None
    assert len(secret) >= 43
    assert client["redirectUris"] == [REDIRECT]
    assert client["allowedScopes"] == ["wiki:read"]
    # Only a keyed hash is stored, never the secret.
    digest = await scalar(container, "SELECT secret_digest FROM oauth_clients")
    assert len(digest) == 32
    assert secret.encode() not in digest
    async with container.reading() as uow:
        row = await container.oauth_clients.find(uow, client["clientId"])
    assert row is not None
    assert await container.oauth_clients.secret_matches(row, secret)

    listed = (await gql(LIST, token=admin.access_token))["data"]["oauthClients"]
    assert [c["clientId"] for c in listed] == [client["clientId"]]

    rotated = (await gql(ROTATE, {"id": client["id"]}, token=admin.access_token))["data"]
    new_secret = rotated["rotateOAuthClientSecret"]["clientSecret"]
    async with container.reading() as uow:
        row = await container.oauth_clients.find(uow, client["clientId"])
    assert row is not None
    assert await container.oauth_clients.secret_matches(row, new_secret)
    assert not await container.oauth_clients.secret_matches(row, secret)

    assert client["postLogoutRedirectUris"] == []  # none unless registered
    out = "https://wiki.example.com/signed-out"
    changes = {"name": "Wiki", "postLogoutRedirectUris": [out]}
    updated = await gql(UPDATE, {"id": client["id"], "input": changes}, token=admin.access_token)
    assert updated["data"]["updateOAuthClient"]["client"]["name"] == "Wiki"
    assert updated["data"]["updateOAuthClient"]["client"]["postLogoutRedirectUris"] == [out]
    changed = await scalar(
        container, "SELECT details FROM audit_events WHERE action = 'oauth.client_updated'"
    )
    assert "postLogoutRedirectUris" in str(changed)

    deleted = await gql(DELETE, {"id": client["id"]}, token=admin.access_token)
    assert deleted["data"]["deleteOAuthClient"]["__typename"] == "DeleteOAuthClientSuccess"
    assert await scalar(container, "SELECT count(*) FROM oauth_clients") == 0
    actions = await scalar(
        container,
        "SELECT count(*) FROM audit_events WHERE action IN ('oauth.client_created',"
        " 'oauth.client_secret_rotated', 'oauth.client_updated', 'oauth.client_deleted')",
    )
    assert actions == 4


async def test_a_public_client_has_no_secret(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    client, secret = await create_client(gql, admin, isConfidential=False)
    assert secret is None
    assert client["isConfidential"] is False
    rotated = (await gql(ROTATE, {"id": client["id"]}, token=admin.access_token))["data"]
    assert rotated["rotateOAuthClientSecret"]["clientSecret"] is None


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"name": "  "}, "name", "required"),
        ({"redirectUris": []}, "redirectUris", "required"),
        ({"redirectUris": ["http://wiki.example.com/cb"]}, "redirectUris", "invalid_url"),
        ({"redirectUris": ["https://wiki.example.com/cb#x"]}, "redirectUris", "invalid_url"),
        ({"redirectUris": ["javascript:alert(1)"]}, "redirectUris", "invalid_url"),
        ({"redirectUris": [f"https://e.com/{i}" for i in range(11)]}, "redirectUris", "too_many"),
        ({"allowedScopes": ["Wiki Read"]}, "allowedScopes", "invalid_scope"),
        ({"postLogoutRedirectUris": ["http://e.com/out"]}, "postLogoutRedirectUris", "invalid_url"),
        (
            {"postLogoutRedirectUris": [f"https://e.com/{i}" for i in range(11)]},
            "postLogoutRedirectUris",
            "too_many",
        ),
    ],
)
async def test_bad_input_is_refused_and_nothing_written(
    gql: GraphQLClient, container: Container, fields: dict[str, object], field: str, code: str
) -> None:
    admin = await make_admin(container, gql)
    before = await row_counts(container)
    values = {"name": "Wiki", "redirectUris": [REDIRECT], **fields}
    result = (await gql(CREATE_CLIENT, {"input": values}, token=admin.access_token))["data"]
    answer = result["createOAuthClient"]
    assert answer["__typename"] == "ValidationError"
    assert {(f["field"], f["code"]) for f in answer["fields"]} == {(field, code)}
    assert await row_counts(container) == before


async def test_loopback_http_is_allowed(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    client, _ = await create_client(gql, admin, redirectUris=["http://127.0.0.1:8080/cb"])
    assert client["redirectUris"] == ["http://127.0.0.1:8080/cb"]


async def test_permissions(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    reader = await user_with(gql, admin, "reader@example.com", ["clients:read"])
    writer = await user_with(gql, admin, "writer@example.com", ["clients:write"])
    nobody = await user_with(gql, admin, "nobody@example.com", [])

    refused = await gql(LIST, token=nobody.access_token, expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql(LIST, token=reader.access_token))["data"]["oauthClients"] == []
    values = {"name": "Wiki", "redirectUris": [REDIRECT]}
    refused = await gql(
        CREATE_CLIENT, {"input": values}, token=reader.access_token, expect_errors=True
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # A third-party client is enough for clients:write; a first-party one needs everything.
    await create_client(gql, writer)
    before = await row_counts(container)
    first_party = {**values, "isFirstParty": True}
    refused = await gql(
        CREATE_CLIENT, {"input": first_party}, token=writer.access_token, expect_errors=True
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_counts(container) == before
    own, _ = await create_client(gql, admin, isFirstParty=True)
    changed = await gql(
        UPDATE,
        {"id": own["id"], "input": {"redirectUris": ["https://evil.example.com/cb"]}},
        token=writer.access_token,
        expect_errors=True,
    )
    assert changed["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_unknown_ids_are_not_found(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    for document in (ROTATE, DELETE):
        result = await gql(document, {"id": "not-a-uuid"}, token=admin.access_token)
        (answer,) = result["data"].values()
        assert answer["__typename"] == "NotFound"
    result = await gql(
        UPDATE,
        {"id": "00000000-0000-0000-0000-000000000000", "input": {"name": "x"}},
        token=admin.access_token,
    )
    assert result["data"]["updateOAuthClient"]["__typename"] == "NotFound"
