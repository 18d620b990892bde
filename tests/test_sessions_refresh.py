"""Refresh-token rotation, the two-tab grace, reuse detection, lifetimes, logout."""

from __future__ import annotations

import asyncio

import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.conftest import GraphQLClient, login, row_counts, scalar, signed_up

REFRESH = """
mutation Refresh($token: String) {
  refreshToken(input: {refreshToken: $token}) {
    __typename
    ... on AuthPayload { accessToken refreshToken expiresIn user { email roles { name } } }
    ... on Error { message }
  }
}
"""
LOGOUT = """
mutation Logout($token: String) {
  logout(input: {refreshToken: $token}) { __typename ... on LogoutSuccess { message } ... on Error { message } }
}
"""
ME = "{ me { email } }"


async def refresh(gql: GraphQLClient, token: str | None) -> dict[str, object]:
    result: dict[str, object] = (await gql(REFRESH, {"token": token}))["data"]["refreshToken"]
    return result


async def me_code(gql: GraphQLClient, token: str) -> str | None:
    body = await gql(ME, token=token, expect_errors=True)
    if "errors" in body:
        code: str = body["errors"][0]["extensions"]["code"]
        return code
    return None


async def test_refresh_rotates_the_token(gql: GraphQLClient, clock: FrozenClock) -> None:
    user = await signed_up(gql)
    clock.advance(60)
    first = await refresh(gql, user.refresh_token)
    assert first["__typename"] == "AuthPayload"
    assert first["refreshToken"] != user.refresh_token
    assert first["user"] == {"email": user.email, "roles": [{"name": "user"}]}
    assert await me_code(gql, str(first["accessToken"])) is None
    clock.advance(60)
    second = await refresh(gql, str(first["refreshToken"]))
    assert second["__typename"] == "AuthPayload"
    assert second["refreshToken"] not in (first["refreshToken"], user.refresh_token)


async def test_two_tabs_refreshing_at_once_get_the_same_successor(
    gql: GraphQLClient, clock: FrozenClock
) -> None:
    user = await signed_up(gql)
    a, b = await asyncio.gather(refresh(gql, user.refresh_token), refresh(gql, user.refresh_token))
    assert a["__typename"] == b["__typename"] == "AuthPayload"
    assert a["refreshToken"] == b["refreshToken"]
    # And a late third tab within the grace still gets that successor, never a branch.
    clock.advance(9)
    c = await refresh(gql, user.refresh_token)
    assert c["refreshToken"] == a["refreshToken"]
    # The successor works; the session is intact.
    assert (await refresh(gql, str(a["refreshToken"])))["__typename"] == "AuthPayload"


async def test_replay_after_grace_revokes_the_whole_session(
    gql: GraphQLClient, clock: FrozenClock, container: Container
) -> None:
    user = await signed_up(gql)
    first = await refresh(gql, user.refresh_token)
    second = await refresh(gql, str(first["refreshToken"]))
    access = str(second["accessToken"])
    clock.advance(11)  # past the 10 s grace
    replay = await refresh(gql, user.refresh_token)
    assert replay["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT revoked_reason FROM sessions") == "reuse"
    # The thief's and the owner's latest tokens are dead too.
    assert (await refresh(gql, str(second["refreshToken"])))["__typename"] == "InvalidToken"
    assert await me_code(gql, access) == "UNAUTHENTICATED"


async def test_replay_of_an_older_token_within_grace_is_reuse(
    gql: GraphQLClient, container: Container
) -> None:
    # Two rotations ago is never "the same successor": it is theft even inside the grace.
    user = await signed_up(gql)
    first = await refresh(gql, user.refresh_token)
    await refresh(gql, str(first["refreshToken"]))
    assert (await refresh(gql, user.refresh_token))["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT revoked_reason FROM sessions") == "reuse"


async def test_rotation_never_extends_the_absolute_lifetime(
    gql: GraphQLClient, clock: FrozenClock
) -> None:
    user = await signed_up(gql)
    token = user.refresh_token
    for _ in range(29):
        clock.advance(days=1)
        result = await refresh(gql, token)
        assert result["__typename"] == "AuthPayload"
        token = str(result["refreshToken"])
    clock.advance(days=1, seconds=1)  # 30 days after login
    assert (await refresh(gql, token))["__typename"] == "InvalidToken"


@pytest.mark.parametrize("settings_overrides", [{"refresh_idle_timeout": 3600}])
async def test_idle_timeout_ends_an_unused_session(gql: GraphQLClient, clock: FrozenClock) -> None:
    user = await signed_up(gql)
    clock.advance(3000)
    result = await refresh(gql, user.refresh_token)
    assert result["__typename"] == "AuthPayload"
    clock.advance(3601)
    assert (await refresh(gql, str(result["refreshToken"])))["__typename"] == "InvalidToken"


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        "A" * 75,
        "n7z9WreeT9iJ01oPwzWf6wAAAAAAAAAAYkG0A-xn1hd-9ccWpKBFfUFVwMi9BtwlrmEv1q-EbJs",
        "x" * 10_000,
    ],
)
async def test_garbage_refresh_tokens_are_invalid_and_change_nothing(
    gql: GraphQLClient, container: Container, token: str | None
) -> None:
    await signed_up(gql)
    before = await row_counts(container)
    counter = await scalar(container, "SELECT refresh_counter FROM sessions")
    assert (await refresh(gql, token))["__typename"] == "InvalidToken"
    assert await row_counts(container) == before
    assert await scalar(container, "SELECT refresh_counter FROM sessions") == counter
    assert await scalar(container, "SELECT revoked_at FROM sessions") is None


async def test_a_token_from_another_secret_is_invalid(
    gql: GraphQLClient, container: Container
) -> None:
    from identity.security.derive import ServerSecret

    await signed_up(gql)
    session_id = await scalar(container, "SELECT id FROM sessions")
    import uuid

    sid = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
    forged = ServerSecret(b"another-secret" * 4).token("refresh-token", sid.bytes + bytes(8))
    assert (await refresh(gql, forged))["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT revoked_at FROM sessions") is None


async def test_logout_ends_the_session(gql: GraphQLClient, container: Container) -> None:
    user = await signed_up(gql)
    result = (await gql(LOGOUT, {"token": user.refresh_token}))["data"]["logout"]
    assert result["__typename"] == "LogoutSuccess"
    assert await scalar(container, "SELECT revoked_reason FROM sessions") == "logout"
    assert await me_code(gql, user.access_token) == "UNAUTHENTICATED"
    assert (await refresh(gql, user.refresh_token))["__typename"] == "InvalidToken"
    again = (await gql(LOGOUT, {"token": user.refresh_token}))["data"]["logout"]
    assert again["__typename"] == "InvalidToken"


async def test_logout_ends_only_that_session(gql: GraphQLClient) -> None:
    phone = await signed_up(gql)
    laptop = await login(gql)
    await gql(LOGOUT, {"token": phone.refresh_token})
    assert await me_code(gql, laptop.access_token) is None
    assert (await refresh(gql, laptop.refresh_token))["__typename"] == "AuthPayload"


async def test_logout_with_garbage_changes_nothing(
    gql: GraphQLClient, container: Container
) -> None:
    await signed_up(gql)
    before = await row_counts(container)
    result = (await gql(LOGOUT, {"token": "nonsense"}))["data"]["logout"]
    assert result["__typename"] == "InvalidToken"
    assert await row_counts(container) == before
    assert await scalar(container, "SELECT revoked_at FROM sessions") is None


async def test_refresh_for_deactivated_user_is_invalid(
    gql: GraphQLClient, container: Container
) -> None:
    user = await signed_up(gql)
    async with container.writes() as db:
        from sqlalchemy import text

        await db.execute(text("UPDATE users SET is_active = :f"), {"f": False})
        await db.commit()
    assert (await refresh(gql, user.refresh_token))["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT refresh_counter FROM sessions") == 0
