"""updateMe and changePassword."""

from __future__ import annotations

import pytest

from identity.container import Container
from tests.conftest import PASSWORD, GraphQLClient, login, row_counts, scalar, signed_up

UPDATE_ME = """
mutation UpdateMe($input: UpdateMeInput!) {
  updateMe(input: $input) {
    __typename
    ... on UpdateMeSuccess { user { firstName lastName updatedAt } }
    ... on ValidationError { fields { field code } }
  }
}
"""
CHANGE_PASSWORD = """
mutation Change($input: ChangePasswordInput!) {
  changePassword(input: $input) {
    __typename
    ... on ChangePasswordSuccess { message }
    ... on ValidationError { fields { field code } }
    ... on Error { message }
  }
}
"""
ME = "{ me { email firstName lastName } }"
REFRESH = "mutation($t: String) { refreshToken(input: {refreshToken: $t}) { __typename } }"


async def test_update_me_changes_given_fields_only(gql: GraphQLClient) -> None:
    user = await signed_up(gql)
    result = await gql(UPDATE_ME, {"input": {"firstName": "Annie"}}, token=user.access_token)
    assert result["data"]["updateMe"]["__typename"] == "UpdateMeSuccess"
    assert result["data"]["updateMe"]["user"]["firstName"] == "Annie"
    assert result["data"]["updateMe"]["user"]["lastName"] == "Lee"
    me = (await gql(ME, token=user.access_token))["data"]["me"]
    assert (me["firstName"], me["lastName"]) == ("Annie", "Lee")


async def test_update_me_refuses_explicit_null_and_bad_values_and_keeps_the_row(
    gql: GraphQLClient,
) -> None:
    user = await signed_up(gql)
    variables = {"input": {"firstName": None, "lastName": "L" * 101}}
    result = (await gql(UPDATE_ME, variables, token=user.access_token))["data"]["updateMe"]
    assert result["__typename"] == "ValidationError"
    assert result["fields"] == [
        {"field": "firstName", "code": "required"},
        {"field": "lastName", "code": "too_long"},
    ]
    me = (await gql(ME, token=user.access_token))["data"]["me"]
    assert (me["firstName"], me["lastName"]) == ("Ann", "Lee")


async def test_update_me_refuses_control_characters(gql: GraphQLClient) -> None:
    user = await signed_up(gql)
    for bad in ("Ann\x00", "Ann\u202eeeL"):
        result = await gql(UPDATE_ME, {"input": {"firstName": bad}}, token=user.access_token)
        assert result["data"]["updateMe"]["fields"] == [
            {"field": "firstName", "code": "invalid_characters"}
        ]


async def test_update_me_without_token_is_unauthenticated(
    gql: GraphQLClient, container: Container
) -> None:
    await signed_up(gql)
    before = await row_counts(container)
    body = await gql(UPDATE_ME, {"input": {"firstName": "X"}}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["data"] is None
    assert await row_counts(container) == before
    assert await scalar(container, "SELECT first_name FROM users") == "Ann"


async def test_change_password_keeps_this_session_and_ends_the_others(
    gql: GraphQLClient, container: Container
) -> None:
    laptop = await signed_up(gql)
    phone = await login(gql)
    new = "a brand new passphrase"
    variables = {"input": {"currentPassword": PASSWORD, "newPassword": new}}
    result = await gql(CHANGE_PASSWORD, variables, token=laptop.access_token)
    assert result["data"]["changePassword"]["__typename"] == "ChangePasswordSuccess"

    assert (await gql(ME, token=laptop.access_token))["data"]["me"]["email"] == laptop.email
    body = await gql(ME, token=phone.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    refreshed = await gql(REFRESH, {"t": phone.refresh_token})
    assert refreshed["data"]["refreshToken"]["__typename"] == "InvalidToken"
    kept = await gql(REFRESH, {"t": laptop.refresh_token})
    assert kept["data"]["refreshToken"]["__typename"] == "AuthPayload"

    await login(gql, password=new)
    old = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        {"i": {"email": laptop.email, "password": PASSWORD}},
    )
    assert old["data"]["login"]["__typename"] == "InvalidCredentials"


async def test_change_password_with_wrong_current_changes_nothing(
    gql: GraphQLClient, container: Container
) -> None:
    laptop = await signed_up(gql)
    phone = await login(gql)
    stored = await scalar(container, "SELECT password_hash FROM users")
    variables = {
        "input": {"currentPassword": "not my password", "newPassword": "another fine passphrase"}
    }
    result = await gql(CHANGE_PASSWORD, variables, token=laptop.access_token)
    assert result["data"]["changePassword"]["__typename"] == "InvalidCredentials"
    assert await scalar(container, "SELECT password_hash FROM users") == stored
    assert (await gql(ME, token=phone.access_token))["data"]["me"] is not None


@pytest.mark.parametrize(
    ("new", "code"),
    [("short", "too_short"), ("password1234", "too_common"), ("y" * 129, "too_long")],
)
async def test_change_password_refuses_weak_new_password(
    gql: GraphQLClient, container: Container, new: str, code: str
) -> None:
    user = await signed_up(gql)
    stored = await scalar(container, "SELECT password_hash FROM users")
    variables = {"input": {"currentPassword": PASSWORD, "newPassword": new}}
    result = (await gql(CHANGE_PASSWORD, variables, token=user.access_token))["data"]
    assert result["changePassword"]["__typename"] == "ValidationError"
    assert result["changePassword"]["fields"] == [{"field": "newPassword", "code": code}]
    assert await scalar(container, "SELECT password_hash FROM users") == stored


async def test_change_password_without_token_is_unauthenticated(gql: GraphQLClient) -> None:
    variables = {"input": {"currentPassword": PASSWORD, "newPassword": "whatever it is now"}}
    body = await gql(CHANGE_PASSWORD, variables, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_old_hash_parameters_are_upgraded_at_login(
    gql: GraphQLClient, container: Container
) -> None:
    from argon2 import PasswordHasher

    await signed_up(gql)
    old = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1).hash(PASSWORD)
    async with container.writes() as db:
        from sqlalchemy import text

        await db.execute(text("UPDATE users SET password_hash = :h"), {"h": old})
        await db.commit()
    await login(gql)
    upgraded = await scalar(container, "SELECT password_hash FROM users")
    assert upgraded != old
    assert "m=1024,t=1,p=1" in upgraded  # the configured parameters
    await login(gql)  # and it still verifies
