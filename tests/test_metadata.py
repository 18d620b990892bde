"""appMetadata (admins, into access tokens) and userMetadata (the user's own, never in tokens)."""

from __future__ import annotations

from typing import Any

import jwt
import orjson

from identity.container import Container
from tests.admin_helpers import make_admin, user_with
from tests.conftest import GraphQLClient, login, row_counts, scalar, signed_up
from tests.test_transfer import export_lines, import_lines

UPDATE_USER = """
mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) {
    __typename
    ... on UpdateUserSuccess { user { appMetadata userMetadata } }
    ... on ValidationError { fields { field code message } }
  }
}
"""
UPDATE_ME = """
mutation($input: UpdateMeInput!) {
  updateMe(input: $input) {
    __typename
    ... on UpdateMeSuccess { user { appMetadata userMetadata } }
    ... on ValidationError { fields { field code message } }
  }
}
"""
ME = "{ me { appMetadata userMetadata } }"
REFRESH = """
mutation($t: String) {
  refreshToken(input: {refreshToken: $t}) { __typename ... on AuthPayload { accessToken } }
}
"""


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def test_app_metadata_is_set_by_admins_and_travels_in_access_tokens(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    ann = await signed_up(gql, "ann@example.com")
    assert claims(ann.access_token)["app_metadata"] == {}
    app = {"tenant": "acme", "plan": "pro", "seats": 5, "flags": {"beta": True}}
    result = await gql(
        UPDATE_USER, {"id": ann.user_id, "input": {"appMetadata": app}}, token=admin.access_token
    )
    assert result["data"]["updateUser"]["user"] == {"appMetadata": app, "userMetadata": {}}
    assert (await gql(ME, token=ann.access_token))["data"]["me"]["appMetadata"] == app

    # In every token from now on: a sign-in, and a refresh (the hot path on PostgreSQL).
    signed_in = await login(gql, "ann@example.com")
    assert claims(signed_in.access_token)["app_metadata"] == app
    refreshed = await gql(REFRESH, {"t": signed_in.refresh_token})
    token = refreshed["data"]["refreshToken"]["accessToken"]
    assert claims(token)["app_metadata"] == app
    assert "user_metadata" not in claims(token)
    # A token near the 4 KiB limit still works as a bearer token.
    big = {"blob": "x" * 4000}
    await gql(
        UPDATE_USER, {"id": ann.user_id, "input": {"appMetadata": big}}, token=admin.access_token
    )
    heavy = await login(gql, "ann@example.com")
    assert (await gql(ME, token=heavy.access_token))["data"]["me"]["appMetadata"] == big

    audit = await scalar(
        container,
        "SELECT count(*) FROM audit_events WHERE action = 'admin.user_updated'",
    )
    assert audit == 2


async def test_user_metadata_is_the_users_own_and_never_in_tokens(
    gql: GraphQLClient, container: Container
) -> None:
    ann = await signed_up(gql, "ann@example.com")
    mine = {"theme": "dark", "recent": ["a", "b"], "locale": "fr-CA"}
    result = await gql(UPDATE_ME, {"input": {"userMetadata": mine}}, token=ann.access_token)
    assert result["data"]["updateMe"]["user"] == {"appMetadata": {}, "userMetadata": mine}
    again = await login(gql, "ann@example.com")
    assert "user_metadata" not in claims(again.access_token)
    assert mine != claims(again.access_token)["app_metadata"]
    # updateMe has no appMetadata at all: a user cannot raise their own.
    refused = await gql(
        UPDATE_ME,
        {"input": {"appMetadata": {"plan": "pro"}}},
        token=ann.access_token,
        expect_errors=True,
    )
    assert "appMetadata" in refused["errors"][0]["message"]
    cleared = await gql(UPDATE_ME, {"input": {"userMetadata": {}}}, token=ann.access_token)
    assert cleared["data"]["updateMe"]["user"]["userMetadata"] == {}
    fields = await scalar(
        container,
        "SELECT details FROM audit_events WHERE action = 'user.profile_updated' "
        "ORDER BY occurred_at LIMIT 1",
    )
    assert "user_metadata" in str(fields)


async def test_nobody_edits_their_own_app_metadata(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    writer = await user_with(gql, admin, "writer@example.com", ["users:write"])
    before = await row_counts(container)
    for who in (admin, writer):
        refused = await gql(
            UPDATE_USER,
            {"id": who.user_id, "input": {"appMetadata": {"role": "owner"}}},
            token=who.access_token,
            expect_errors=True,
        )
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_counts(container) == before
    assert await scalar(container, "SELECT count(*) FROM users WHERE app_metadata != '{}'") in (
        0,
        None,
    )


BAD_METADATA = [
    ([1, 2], "not_an_object"),
    ("plan=pro", "not_an_object"),
    (42, "not_an_object"),
    (None, "required"),
    ({"blob": "x" * 4100}, "too_large"),
    ({"__proto__": {"admin": True}}, "invalid_key"),
    ({"a.b": 1}, "invalid_key"),
    ({"": 1}, "invalid_key"),
    ({"1st": 1}, "invalid_key"),
    ({"k" * 65: 1}, "invalid_key"),
    ({"ok": {"nested key": 1}}, "invalid_key"),
    ({"ok": [{"$where": 1}]}, "invalid_key"),
    ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}, "too_deep"),
]


async def test_bad_metadata_is_refused_with_a_code_and_nothing_is_written(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    ann = await signed_up(gql, "ann@example.com")
    before = await row_counts(container)
    stamp = await scalar(container, "SELECT updated_at FROM users WHERE email = 'ann@example.com'")
    for value, code in BAD_METADATA:
        for query, variables, token, field in (
            (UPDATE_ME, {"input": {"userMetadata": value}}, ann.access_token, "userMetadata"),
            (
                UPDATE_USER,
                {"id": ann.user_id, "input": {"appMetadata": value}},
                admin.access_token,
                "appMetadata",
            ),
        ):
            result = (await gql(query, variables, token=token))["data"]
            answer = next(iter(result.values()))
            assert answer["__typename"] == "ValidationError", (value, field)
            assert [(f["field"], f["code"]) for f in answer["fields"]] == [(field, code)], value
    assert await row_counts(container) == before
    assert (
        await scalar(container, "SELECT updated_at FROM users WHERE email = 'ann@example.com'")
        == stamp
    )


async def test_import_and_export_carry_both(container: Container) -> None:
    lines = [
        {"email": "ann@example.com", "appMetadata": {"plan": "pro"}, "userMetadata": {"t": 1}},
        {"email": "bo@example.com"},
        {"email": "cy@example.com", "appMetadata": ["not", "an", "object"]},
        {"email": "di@example.com", "userMetadata": {"bad key": 1}},
    ]
    report, bad = await import_lines(container, [orjson.dumps(line).decode() for line in lines])
    assert report.created == 2
    assert [b.line for b in bad] == [3, 4]
    assert "appMetadata: Metadata must be a JSON object." in bad[0].problems
    exported = {u["email"]: u for u in await export_lines(container)}
    assert exported["ann@example.com"]["appMetadata"] == {"plan": "pro"}
    assert exported["ann@example.com"]["userMetadata"] == {"t": 1}
    assert exported["bo@example.com"]["appMetadata"] == {}
    # A re-import changes metadata the line gives, and keeps what it leaves out.
    report, _ = await import_lines(
        container, [orjson.dumps({"email": "ann@example.com", "appMetadata": {}}).decode()]
    )
    again = {u["email"]: u for u in await export_lines(container)}
    assert again["ann@example.com"]["appMetadata"] == {}
    assert again["ann@example.com"]["userMetadata"] == {"t": 1}
