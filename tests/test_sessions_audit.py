"""A user's own sessions, and the audit log."""

from __future__ import annotations

from typing import Any

import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import PASSWORD, GraphQLClient, login, register, scalar, signed_up

SESSIONS = "{ me { sessions { id current userAgent ipAddress createdAt lastUsedAt expiresAt } } }"
REVOKE_SESSION = (
    "mutation($id: ID!) { revokeSession(id: $id) { __typename ... on NotFound { message } } }"
)
REVOKE_ALL = "mutation($keep: Boolean) { revokeAllSessions(keepCurrent: $keep) { __typename ... on RevokeAllSessionsSuccess { count } } }"
AUDIT = """
query($first: Int, $after: String, $filter: AuditFilter) {
  auditEvents(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { action actorId subjectId ipAddress userAgent details occurredAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def me_code(gql: GraphQLClient, token: str) -> str | None:
    body = await gql("{ me { id } }", token=token, expect_errors=True)
    return body["errors"][0]["extensions"]["code"] if "errors" in body else None


async def test_sessions_list_the_devices(gql: GraphQLClient, clock: FrozenClock) -> None:
    laptop = await signed_up(gql)
    clock.advance(60)
    phone = await login(gql)
    sessions = (await gql(SESSIONS, token=phone.access_token))["data"]["me"]["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions] == [True, False]  # newest first
    assert sessions[0]["ipAddress"] == "203.0.113.7"
    assert sessions[0]["userAgent"].startswith("python-httpx")
    assert sessions[0]["expiresAt"] > sessions[0]["createdAt"]
    seen_from_laptop = (await gql(SESSIONS, token=laptop.access_token))["data"]["me"]["sessions"]
    assert [s["current"] for s in seen_from_laptop] == [False, True]


async def test_revoke_one_session(gql: GraphQLClient, container: Container) -> None:
    laptop = await signed_up(gql)
    phone = await login(gql)
    sessions = (await gql(SESSIONS, token=laptop.access_token))["data"]["me"]["sessions"]
    phone_session = next(s["id"] for s in sessions if not s["current"])
    result = await gql(REVOKE_SESSION, {"id": phone_session}, token=laptop.access_token)
    assert result["data"]["revokeSession"]["__typename"] == "RevokeSessionSuccess"
    assert await me_code(gql, phone.access_token) == "UNAUTHENTICATED"
    assert await me_code(gql, laptop.access_token) is None
    again = await gql(REVOKE_SESSION, {"id": phone_session}, token=laptop.access_token)
    assert again["data"]["revokeSession"]["__typename"] == "NotFound"


async def test_someone_elses_session_is_not_found(gql: GraphQLClient, container: Container) -> None:
    ann = await signed_up(gql, "ann@example.com")
    bob = await signed_up(gql, "bob@example.com")
    bobs = (await gql(SESSIONS, token=bob.access_token))["data"]["me"]["sessions"][0]["id"]
    for target in (bobs, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        result = await gql(REVOKE_SESSION, {"id": target}, token=ann.access_token)
        assert result["data"]["revokeSession"] == {
            "__typename": "NotFound",
            "message": "No session with this id.",
        }
    assert await me_code(gql, bob.access_token) is None


@pytest.mark.parametrize(
    ("keep", "ended", "caller_survives"), [(None, 2, True), (True, 2, True), (False, 3, False)]
)
async def test_revoke_all_sessions(
    gql: GraphQLClient, keep: bool | None, ended: int, caller_survives: bool
) -> None:
    caller = await signed_up(gql)
    others = [await login(gql), await login(gql)]
    variables: dict[str, Any] = {} if keep is None else {"keep": keep}
    result = await gql(REVOKE_ALL, variables, token=caller.access_token)
    assert result["data"]["revokeAllSessions"]["count"] == ended
    for other in others:
        assert await me_code(gql, other.access_token) == "UNAUTHENTICATED"
    assert (await me_code(gql, caller.access_token) is None) == caller_survives


async def test_one_session_ended_is_singular(gql: GraphQLClient) -> None:
    caller = await signed_up(gql)
    await login(gql)
    result = await gql(
        "mutation { revokeAllSessions { ... on RevokeAllSessionsSuccess { message count } } }",
        token=caller.access_token,
    )
    assert result["data"]["revokeAllSessions"] == {"message": "1 session ended.", "count": 1}


async def test_sessions_need_a_token(gql: GraphQLClient) -> None:
    body = await gql(REVOKE_ALL, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# Audit ------------------------------------------------------------------------------------


async def test_security_events_are_recorded(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    await register(gql, "ann@example.com")
    clock.advance(1)
    user = await login(gql, "ann@example.com")
    clock.advance(1)
    await gql(
        "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        {"i": {"email": "ann@example.com", "password": "a wrong guess"}},
    )
    clock.advance(1)
    refresh = "mutation($t: String) { refreshToken(input: {refreshToken: $t}) { __typename ... on AuthPayload { refreshToken } } }"
    first = (await gql(refresh, {"t": user.refresh_token}))["data"]["refreshToken"]["refreshToken"]
    await gql(refresh, {"t": first})
    clock.advance(30)
    await gql(refresh, {"t": user.refresh_token})  # reuse: the session ends
    clock.advance(1)

    data = (await gql(AUDIT, {"filter": {"userId": user.user_id}}, token=admin.access_token))[
        "data"
    ]["auditEvents"]
    actions = [e["node"]["action"] for e in data["edges"]]
    assert actions == [
        "auth.refresh_token_reuse",
        "auth.login_failed",
        "auth.login",
        "user.registered",
    ]
    assert data["totalCount"] == 4
    failed = data["edges"][1]["node"]
    assert failed["details"] == {"email": "ann@example.com", "reason": "wrong_password"}
    assert failed["actorId"] is None
    assert failed["subjectId"] == user.user_id
    assert failed["ipAddress"] == "203.0.113.7"
    assert failed["userAgent"].startswith("python-httpx")
    times = [e["node"]["occurredAt"] for e in data["edges"]]
    assert times == sorted(times, reverse=True)
    # The password tried is never written anywhere.
    async with container.reads() as db:
        from sqlalchemy import text

        rows = (await db.execute(text("SELECT * FROM audit_events"))).all()
    assert "a wrong guess" not in repr(rows)
    assert PASSWORD not in repr(rows)


async def test_audit_filters_and_paging(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    start = clock.now()
    for i in range(7):
        clock.advance(10)
        await gql(
            "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
            {"i": {"email": f"nobody{i}@example.com", "password": "whatever it is"}},
        )
    token = admin.access_token
    by_action = (
        await gql(AUDIT, {"filter": {"action": "auth.login_failed"}, "first": 3}, token=token)
    )["data"]["auditEvents"]
    assert by_action["totalCount"] == 7
    seen = []
    page = by_action
    while True:
        seen += [e["node"]["details"]["email"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        page = (
            await gql(
                AUDIT,
                {
                    "filter": {"action": "auth.login_failed"},
                    "first": 3,
                    "after": page["pageInfo"]["endCursor"],
                },
                token=token,
            )
        )["data"]["auditEvents"]
    assert seen == [f"nobody{i}@example.com" for i in reversed(range(7))]

    window = {
        "action": "auth.login_failed",
        "since": (start.replace(microsecond=0)).isoformat().replace("+00:00", "Z"),
    }
    assert (await gql(AUDIT, {"filter": window}, token=token))["data"]["auditEvents"][
        "totalCount"
    ] == 7
    from datetime import timedelta

    until = (start + timedelta(seconds=35)).isoformat()
    bounded = (
        await gql(AUDIT, {"filter": {"action": "auth.login_failed", "until": until}}, token=token)
    )["data"]["auditEvents"]
    assert bounded["totalCount"] == 3
    bad = await gql(AUDIT, {"filter": {"userId": "nope"}}, token=token, expect_errors=True)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_prune_removes_only_old_events(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    await signed_up(gql)
    clock.advance(days=91)
    await login(gql)
    total = await scalar(container, "SELECT count(*) FROM audit_events")
    async with container.unit_of_work() as uow:
        from datetime import timedelta

        pruned = await container.admin.prune_audit(uow, clock.now() - timedelta(days=90))
    assert pruned == 3  # the first signing key, the registration and the first login
    # ... and the pruning itself is recorded.
    assert await scalar(container, "SELECT count(*) FROM audit_events") == total - 3 + 1
