"""register, login and me through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.conftest import (
    LOGIN,
    PASSWORD,
    REGISTER,
    GraphQLClient,
    login,
    register,
    row_counts,
    scalar,
    signed_up,
)

ME = "{ me { id email firstName lastName isActive isVerified roles { name } permissions lastLoginAt createdAt } }"


async def test_register_creates_user_with_user_role(
    gql: GraphQLClient, container: Container
) -> None:
    user = await register(gql, "  Ann.Lee@Example.COM ", first_name=" Ann ", last_name="Lee")
    assert user["email"] == "ann.lee@example.com"
    assert user["firstName"] == "Ann"
    assert user["isVerified"] is False
    assert [r["name"] for r in user["roles"]] == ["user"]
    uuid.UUID(user["id"])
    stored = await scalar(container, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_register_same_email_any_case_is_refused(
    gql: GraphQLClient, container: Container
) -> None:
    await register(gql, "ann@example.com")
    before = await row_counts(container)
    data = {"email": "ANN@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B"}
    result = (await gql(REGISTER, {"input": data}))["data"]["register"]
    assert result["__typename"] == "EmailAlreadyRegistered"
    assert await row_counts(container) == before


async def test_register_reports_every_invalid_field_at_once(
    gql: GraphQLClient, container: Container
) -> None:
    before = await row_counts(container)
    data = {"email": "not-an-email", "password": "short", "firstName": "x" * 101, "lastName": "ok"}
    result = (await gql(REGISTER, {"input": data}))["data"]["register"]
    assert result["__typename"] == "ValidationError"
    codes = {f["field"]: f["code"] for f in result["fields"]}
    assert codes == {"email": "invalid_email", "password": "too_short", "firstName": "too_long"}
    assert await row_counts(container) == before


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("password123", "too_common"),
        ("PassWord123", "too_common"),  # case does not make it less common
        ("x" * 129, "too_long"),
        ("\uff41\uff42\uff43\uff44\uff45\uff46\uff47", "too_short"),  # 7 code points after NFKC
        ("x" * 60_000, "too_long"),  # just under the body limit
    ],
)
async def test_register_refuses_weak_passwords(
    gql: GraphQLClient, container: Container, password: str, code: str
) -> None:
    data = {"email": "ann@example.com", "password": password, "firstName": "A", "lastName": "B"}
    result = (await gql(REGISTER, {"input": data}))["data"]["register"]
    assert result["__typename"] == "ValidationError"
    assert result["fields"] == [
        {"field": "password", "code": code, "message": result["fields"][0]["message"]}
    ]
    assert await scalar(container, "SELECT count(*) FROM users") == 0


async def test_password_is_nfkc_normalized(gql: GraphQLClient) -> None:
    # The full-width form and the ASCII form are the same password after NFKC.
    await register(gql, password="\uff23orrect horse battery")
    await login(gql, password="Correct horse battery")


async def test_login_returns_tokens_and_me_reads_them(gql: GraphQLClient) -> None:
    await register(gql)
    result = await gql(LOGIN, {"input": {"email": "ANN@example.com", "password": PASSWORD}})
    payload = result["data"]["login"]
    assert payload["__typename"] == "AuthPayload"
    assert payload["tokenType"] == "Bearer"
    assert payload["expiresIn"] == 900
    assert len(payload["refreshToken"]) >= 43  # at least 256 bits
    me = (await gql(ME, token=payload["accessToken"]))["data"]["me"]
    assert me["email"] == "ann@example.com"
    assert [r["name"] for r in me["roles"]] == ["user"]
    assert me["permissions"] == []
    assert me["lastLoginAt"].endswith("+00:00")
    assert me["createdAt"].endswith("+00:00")


async def test_me_without_token_is_null(gql: GraphQLClient) -> None:
    assert (await gql(ME))["data"] == {"me": None}


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer " + "x" * 5000],
)
async def test_me_with_unusable_token_is_unauthenticated(
    gql: GraphQLClient, authorization: str
) -> None:
    body = await gql(ME, headers={"Authorization": authorization}, expect_errors=True)
    assert body["data"] == {"me": None}
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_wrong_password_and_unknown_email_look_the_same(
    gql: GraphQLClient, container: Container
) -> None:
    await register(gql)
    wrong = await gql(LOGIN, {"input": {"email": "ann@example.com", "password": "wrong password!"}})
    unknown = await gql(LOGIN, {"input": {"email": "bob@example.com", "password": PASSWORD}})
    assert wrong == unknown
    assert wrong["data"]["login"]["__typename"] == "InvalidCredentials"
    assert await scalar(container, "SELECT count(*) FROM sessions") == 0
    assert await scalar(container, "SELECT last_login_at FROM users") is None


async def test_login_for_unknown_email_still_verifies_a_hash(
    gql: GraphQLClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = container.runtime.hasher
    seen: list[str | None] = []
    original = hasher.verify

    async def spy(password_hash: str | None, password: str, **options: str | None):  # type: ignore[no-untyped-def]
        seen.append(password_hash)
        return await original(password_hash, password, **options)

    monkeypatch.setattr(hasher, "verify", spy)
    result = await gql(LOGIN, {"input": {"email": "nobody@example.com", "password": PASSWORD}})
    assert result["data"]["login"]["__typename"] == "InvalidCredentials"
    assert seen == [None]  # the dummy-hash path ran: same cost as a wrong password


@pytest.mark.parametrize(
    ("email", "password", "field", "code"),
    [
        ("not-an-email", PASSWORD, "email", "invalid_email"),
        ("ann@example.com", "", "password", "required"),
        ("ann@example.com", "p" * 129, "password", "too_long"),
        ("ann@example.com", "p" * 60_000, "password", "too_long"),
    ],
)
async def test_login_refuses_malformed_input_before_hashing(
    gql: GraphQLClient,
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
    email: str,
    password: str,
    field: str,
    code: str,
) -> None:
    async def fail(*_: object) -> None:
        raise AssertionError("a password was hashed")

    monkeypatch.setattr(container.runtime.hasher, "verify", fail)
    result = (await gql(LOGIN, {"input": {"email": email, "password": password}}))["data"]["login"]
    assert result["__typename"] == "ValidationError"
    assert result["fields"] == [{"field": field, "code": code}]


async def test_deactivated_user_with_right_password_gets_account_disabled(
    gql: GraphQLClient, container: Container
) -> None:
    user = await signed_up(gql)
    async with container.writes() as db:
        from sqlalchemy import text

        await db.execute(text("UPDATE users SET is_active = :f"), {"f": False})
        await db.commit()
    result = await gql(LOGIN, {"input": {"email": user.email, "password": PASSWORD}})
    assert result["data"]["login"]["__typename"] == "AccountDisabled"
    wrong = await gql(LOGIN, {"input": {"email": user.email, "password": "not the password"}})
    assert wrong["data"]["login"]["__typename"] == "InvalidCredentials"
    # The access token of the deactivated user stops working at once.
    body = await gql(ME, token=user.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("settings_overrides", [{"require_verified_email": True}])
async def test_unverified_user_gets_email_not_verified_when_required(gql: GraphQLClient) -> None:
    await register(gql)
    result = await gql(LOGIN, {"input": {"email": "ann@example.com", "password": PASSWORD}})
    assert result["data"]["login"]["__typename"] == "EmailNotVerified"


async def test_unverified_user_can_sign_in_by_default(gql: GraphQLClient) -> None:
    await register(gql)
    await login(gql)


async def test_expired_access_token_is_unauthenticated(
    gql: GraphQLClient, clock: FrozenClock
) -> None:
    user = await signed_up(gql)
    clock.advance(900 + 29)  # within the 30 s leeway
    assert (await gql(ME, token=user.access_token))["data"]["me"]["email"] == user.email
    clock.advance(2)
    body = await gql(ME, token=user.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_deleted_user_token_stops_working(gql: GraphQLClient, container: Container) -> None:
    user = await signed_up(gql)
    async with container.writes() as db:
        from sqlalchemy import text

        await db.execute(text("DELETE FROM users"))
        await db.commit()
    body = await gql(ME, token=user.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
