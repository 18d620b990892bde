"""The admin API: users, roles, the last-admin guard, paging, filters, statement counts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import ASSIGN, REVOKE, create_role, make_admin, role_id
from tests.conftest import (
    PASSWORD,
    Database,
    GraphQLClient,
    Inbox,
    login,
    register,
    row_counts,
    scalar,
    settle_outbox,
    signed_up,
    token_in,
    wait_for_mail,
)


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


USERS = """
query($first: Int, $after: String, $filter: UserFilter) {
  users(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id email } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
USERS_FULL = """
query($first: Int) {
  users(first: $first) {
    edges { node { id email roles { name permissions { code } } permissions } }
  }
}
"""
UPDATE_USER = """
mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) {
    __typename
    ... on UpdateUserSuccess { user { email firstName isActive isVerified } }
    ... on ValidationError { fields { field code } }
  }
}
"""
DELETE_USER = "mutation($id: ID!) { deleteUser(id: $id) { __typename } }"
DELETE_ME = "mutation($p: String!) { deleteMe(input: {currentPassword: $p}) { __typename } }"
CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) {
    __typename
    ... on CreateUserSuccess { user { id email isVerified roles { name } } }
    ... on ValidationError { fields { field code } }
  }
}
"""
UPDATE_ROLE = """
mutation($id: ID!, $input: UpdateRoleInput!) {
  updateRole(id: $id, input: $input) {
    __typename
    ... on UpdateRoleSuccess { role { name description permissions { code } } }
    ... on ValidationError { fields { field code } }
  }
}
"""
DELETE_ROLE = """
mutation($id: ID!) { deleteRole(id: $id) { __typename ... on ValidationError { fields { field code } } } }
"""


async def page_through(gql: GraphQLClient, token: str, first: int, **filters: Any) -> list[str]:
    emails: list[str] = []
    after = None
    while True:
        variables = {"first": first, "after": after, "filter": filters or None}
        data = (await gql(USERS, variables, token=token))["data"]["users"]
        emails += [edge["node"]["email"] for edge in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return sorted(emails)  # users made in the same instant are ordered by id
        after = data["pageInfo"]["endCursor"]


async def add_users(
    container: Container, count: int, clock: FrozenClock, prefix: str = "u"
) -> None:
    """Users straight into the database (through the admin use case, no hashing)."""
    from identity.services.principal import Principal

    async with container.reading() as uow:
        root = await uow.users.by_email("root@example.com")
    assert root is not None
    actor = Principal(user=root, session_id=root.id, roles=[], role_permissions={})
    for i in range(count):
        clock.advance(0.001)
        async with container.unit_of_work() as uow:
            await container.admin.create_user(
                uow, actor, f"{prefix}{i:03}@example.com", "", "", ["user"]
            )


# Paging and filters -------------------------------------------------------------------------


async def test_paging_visits_every_user_once_despite_inserts(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    await add_users(container, 24, clock)
    first_page = (await gql(USERS, {"first": 10}, token=admin.access_token))["data"]["users"]
    assert len(first_page["edges"]) == 10
    assert first_page["pageInfo"]["hasNextPage"] is True
    await add_users(container, 3, clock, prefix="late")  # inserted between page requests
    rest = []
    after = first_page["pageInfo"]["endCursor"]
    while after:
        data = (await gql(USERS, {"first": 10, "after": after}, token=admin.access_token))["data"][
            "users"
        ]
        rest += [e["node"]["email"] for e in data["edges"]]
        after = data["pageInfo"]["endCursor"] if data["pageInfo"]["hasNextPage"] else None
    emails = [e["node"]["email"] for e in first_page["edges"]] + rest
    assert len(emails) == len(set(emails)) == 1 + 24 + 3  # root, users, late arrivals
    assert emails[0] == "root@example.com"  # oldest first
    assert emails[-3:] == ["late000@example.com", "late001@example.com", "late002@example.com"]


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_first_out_of_bounds_is_bad_user_input(
    gql: GraphQLClient, container: Container, first: int
) -> None:
    admin = await make_admin(container, gql)
    body = await gql(USERS, {"first": first}, token=admin.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "cursor", ["garbage", "", "eyJ9.AAAA", "MjAyNi0xMS0yNVQxMDowMDowMCswMDowMHwx.AAAAAAAAAAAAAAAA"]
)
async def test_foreign_cursor_is_bad_user_input(
    gql: GraphQLClient, container: Container, cursor: str
) -> None:
    admin = await make_admin(container, gql)
    body = await gql(
        USERS, {"first": 5, "after": cursor}, token=admin.access_token, expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_audit_cursor_is_not_a_users_cursor(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    audit = await gql(
        "{ auditEvents(first: 1) { pageInfo { endCursor } } }", token=admin.access_token
    )
    cursor = audit["data"]["auditEvents"]["pageInfo"]["endCursor"]
    assert cursor
    body = await gql(
        USERS, {"first": 5, "after": cursor}, token=admin.access_token, expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_filters_and_total_count(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    await register(gql, "alice.smith@example.com", first_name="Alice", last_name="Smith")
    await register(gql, "bob@example.com", first_name="Bob", last_name="Smithers")
    await register(gql, "carol@example.org", first_name="Carol", last_name="Jones")
    await register(gql, "percent%@example.org", first_name="Per", last_name="Cent")
    token = admin.access_token
    assert await page_through(gql, token, 10, search="SMITH") == [
        "alice.smith@example.com",
        "bob@example.com",
    ]
    assert await page_through(gql, token, 10, search="example.org") == [
        "carol@example.org",
        "percent%@example.org",
    ]
    assert await page_through(gql, token, 10, search="%") == ["percent%@example.org"]  # a literal %
    assert await page_through(gql, token, 10, role="admin") == ["root@example.com"]
    assert await page_through(gql, token, 10, role="no-such-role") == []
    assert await page_through(gql, token, 10, isVerified=True) == ["root@example.com"]
    bob = (await gql(USERS, {"filter": {"search": "bob"}}, token=token))["data"]["users"]["edges"][
        0
    ]["node"]
    await gql(UPDATE_USER, {"id": bob["id"], "input": {"isActive": False}}, token=token)
    assert await page_through(gql, token, 10, isActive=False) == ["bob@example.com"]
    counted = await gql(
        "query($f: UserFilter) { users(first: 1, filter: $f) { totalCount edges { cursor } } }",
        {"f": {"search": "example.org"}},
        token=token,
    )
    assert counted["data"]["users"]["totalCount"] == 2
    assert len(counted["data"]["users"]["edges"]) == 1


# What the app's background work reads (FROM these) while a test counts a request's statements.
BACKGROUND_TABLES = (
    "outbox_messages",
    "one_time_tokens",
    "webhook_deliveries",
    "webhook_endpoints",
    "challenges",
    "dpop_proofs",
)


@contextmanager
def count_statements(container: Container) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = container.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_page_takes_a_constant_number_of_statements(
    gql: GraphQLClient, container: Container, clock: FrozenClock, database: Database
) -> None:
    admin = await make_admin(container, gql)
    await add_users(container, 99, clock)
    support = await create_role(gql, admin, "support", ["users:read"])
    some = (await gql(USERS, {"first": 100}, token=admin.access_token))["data"]["users"]["edges"]
    for edge in [some[i] for i in (2, 9, 15, 40, 77, 99)]:
        await gql(
            ASSIGN, {"user": edge["node"]["id"], "role": support["id"]}, token=admin.access_token
        )
    await settle_outbox(container)  # let the invitations go out first
    counts: dict[int, int] = {}
    seen: dict[int, list[str]] = {}
    for first in (20, 100):
        with count_statements(container) as statements:
            data = (await gql(USERS_FULL, {"first": first}, token=admin.access_token))["data"]
        assert len(data["users"]["edges"]) == first
        seen[first] = [
            s
            for s in statements
            if s.lstrip().upper().startswith("SELECT")
            # the background senders and housekeeping share the engine
            and not any(f"FROM {table}" in s for table in BACKGROUND_TABLES)
        ]
        counts[first] = len(seen[first])
    assert counts[20] == counts[100], seen
    # page, roles of the users, their permissions, the roles' permissions; and the
    # principal, which on PostgreSQL runs on the hot path's own asyncpg pool.
    assert counts[100] == (4 if database.backend == "postgresql" else 5), counts
    holders = [
        e for e in data["users"]["edges"] if "support" in [r["name"] for r in e["node"]["roles"]]
    ]
    assert holders
    assert all(h["node"]["permissions"] == ["users:read"] for h in holders)


async def test_search_uses_the_trigram_index_on_postgresql(
    gql: GraphQLClient, container: Container, database: Database
) -> None:
    if database.backend != "postgresql":
        pytest.skip("the trigram index exists on PostgreSQL only")
    from sqlalchemy import select

    from identity.db.models import User, user_search_text

    stmt = select(User.id).where(user_search_text().like("%smith%"))
    compiled = stmt.compile(container.engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with container.snapshots() as db:  # SET LOCAL needs a transaction
        await db.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await db.execute(text(f"EXPLAIN {compiled}"))).scalars())
    assert "ix_users_search_trgm" in plan, plan


# Users --------------------------------------------------------------------------------------


async def test_create_user_mails_an_invitation_that_sets_the_first_password(
    gql: GraphQLClient, container: Container, smtp: Inbox, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    variables = {
        "input": {
            "email": "New@Example.com",
            "firstName": "Nia",
            "lastName": "Ew",
            "roles": ["user"],
        }
    }
    result = (await gql(CREATE_USER, variables, token=admin.access_token))["data"]["createUser"]
    assert result["__typename"] == "CreateUserSuccess"
    assert result["user"]["email"] == "new@example.com"
    assert result["user"]["roles"] == [{"name": "user"}]
    invitation = (await wait_for_mail(container, smtp, "new@example.com", subject="invited"))[0]
    text = invitation.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "7 days" in text
    assert f"{admin.email} created an account for you on identity." in text
    # No password yet: signing in fails like any wrong password.
    no_password = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        {"i": {"email": "new@example.com", "password": PASSWORD}},
    )
    assert no_password["data"]["login"]["__typename"] == "InvalidCredentials"
    clock.advance(days=6)
    reset = """mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, password: $p, passwordConfirm: $p}) { __typename } }"""
    accepted = await gql(reset, {"t": token_in(invitation), "p": "my first passphrase"})
    assert accepted["data"]["resetPassword"]["__typename"] == "ResetPasswordSuccess"
    await login(gql, "new@example.com", "my first passphrase")
    assert await scalar(
        container, "SELECT is_verified FROM users WHERE email = 'new@example.com'"
    ) in (True, 1)


async def test_create_user_refusals(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    before = await row_counts(container)
    bad = {"input": {"email": "nope", "firstName": "x" * 101, "roles": ["ghost"]}}
    result = (await gql(CREATE_USER, bad, token=admin.access_token))["data"]["createUser"]
    assert result["__typename"] == "ValidationError"
    assert {(f["field"], f["code"]) for f in result["fields"]} == {
        ("email", "invalid_email"),
        ("firstName", "too_long"),
        ("roles", "unknown_role"),
    }
    taken = {"input": {"email": "ROOT@example.com"}}
    assert (await gql(CREATE_USER, taken, token=admin.access_token))["data"]["createUser"][
        "__typename"
    ] == "EmailAlreadyRegistered"
    assert await row_counts(container) == before


async def test_update_user_partial_email_change_and_deactivation(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    admin = await make_admin(container, gql)
    user = await signed_up(gql, "worker@example.com")
    await gql(
        "mutation($t: String!) { verifyEmail(input: {token: $t}) { __typename } }",
        {
            "t": token_in(
                (await wait_for_mail(container, smtp, "worker@example.com", subject="Confirm"))[0]
            )
        },
    )
    result = await gql(
        UPDATE_USER, {"id": user.user_id, "input": {"firstName": "Wanda"}}, token=admin.access_token
    )
    assert result["data"]["updateUser"]["user"] == {
        "email": "worker@example.com",
        "firstName": "Wanda",
        "isActive": True,
        "isVerified": True,
    }
    moved = await gql(
        UPDATE_USER,
        {"id": user.user_id, "input": {"email": "w@example.com"}},
        token=admin.access_token,
    )
    assert moved["data"]["updateUser"]["user"]["isVerified"] is False
    notice = (await wait_for_mail(container, smtp, "worker@example.com", subject="administrator"))[
        0
    ]
    assert "w@example.com" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert (await gql("{ me { email } }", token=user.access_token))["data"]["me"][
        "email"
    ] == "w@example.com"
    off = await gql(
        UPDATE_USER, {"id": user.user_id, "input": {"isActive": False}}, token=admin.access_token
    )
    assert off["data"]["updateUser"]["user"]["isActive"] is False
    body = await gql("{ me { email } }", token=user.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (
        await scalar(
            container,
            "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND user_id <> :a",
            a=await scalar(container, "SELECT id FROM users WHERE email = 'root@example.com'"),
        )
        == 0
    )


async def test_update_user_refusals_change_nothing(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    user = await signed_up(gql, "worker@example.com")
    await register(gql, "taken@example.com")
    before = await row_counts(container)
    nulls = await gql(
        UPDATE_USER,
        {"id": user.user_id, "input": {"firstName": None, "isActive": None}},
        token=admin.access_token,
    )
    assert nulls["data"]["updateUser"] == {
        "__typename": "ValidationError",
        "fields": [
            {"field": "firstName", "code": "required"},
            {"field": "isActive", "code": "required"},
        ],
    }
    taken = await gql(
        UPDATE_USER,
        {"id": user.user_id, "input": {"email": "Taken@example.com"}},
        token=admin.access_token,
    )
    assert taken["data"]["updateUser"]["__typename"] == "EmailAlreadyRegistered"
    for bad_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        missing = await gql(
            UPDATE_USER, {"id": bad_id, "input": {"firstName": "X"}}, token=admin.access_token
        )
        assert missing["data"]["updateUser"]["__typename"] == "NotFound"
    assert await row_counts(container) == before
    assert (
        await scalar(container, "SELECT first_name FROM users WHERE email = 'worker@example.com'")
        == "Ann"
    )


async def test_verify_delete_and_revoke_sessions(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    user = await signed_up(gql, "worker@example.com")
    await login(gql, "worker@example.com")
    verified = await gql(
        "mutation($id: ID!) { verifyUser(id: $id) { __typename ... on VerifyUserSuccess { user { isVerified } } } }",
        {"id": user.user_id},
        token=admin.access_token,
    )
    assert verified["data"]["verifyUser"]["user"]["isVerified"] is True
    revoked = await gql(
        "mutation($id: ID!) { revokeUserSessions(userId: $id) { __typename ... on RevokeUserSessionsSuccess { count } } }",
        {"id": user.user_id},
        token=admin.access_token,
    )
    assert revoked["data"]["revokeUserSessions"]["count"] == 2
    body = await gql("{ me { id } }", token=user.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    deleted = await gql(DELETE_USER, {"id": user.user_id}, token=admin.access_token)
    assert deleted["data"]["deleteUser"]["__typename"] == "DeleteUserSuccess"
    assert (
        await scalar(container, "SELECT count(*) FROM users WHERE email = 'worker@example.com'")
        == 0
    )
    assert await scalar(container, "SELECT count(*) FROM sessions") == 1  # the admin's own
    again = await gql(DELETE_USER, {"id": user.user_id}, token=admin.access_token)
    assert again["data"]["deleteUser"]["__typename"] == "NotFound"
    events = await gql(
        'query($u: ID) { auditEvents(filter: {userId: $u, action: "admin.user_deleted"}) { edges { node { subjectId actorId } } } }',
        {"u": user.user_id},
        token=admin.access_token,
    )
    assert events["data"]["auditEvents"]["edges"][0]["node"] == {
        "subjectId": user.user_id,
        "actorId": admin.user_id,
    }


# The last admin ---------------------------------------------------------------------------


async def test_the_last_active_admin_is_kept(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    admin_role = await role_id(gql, admin, "admin")
    before = await row_counts(container)
    token = admin.access_token
    assert (await gql(REVOKE, {"user": admin.user_id, "role": admin_role}, token=token))["data"][
        "revokeRole"
    ]["__typename"] == "LastAdmin"
    assert (
        await gql(UPDATE_USER, {"id": admin.user_id, "input": {"isActive": False}}, token=token)
    )["data"]["updateUser"]["__typename"] == "LastAdmin"
    assert (await gql(DELETE_USER, {"id": admin.user_id}, token=token))["data"]["deleteUser"][
        "__typename"
    ] == "LastAdmin"
    assert (await gql(DELETE_ME, {"p": PASSWORD}, token=token))["data"]["deleteMe"][
        "__typename"
    ] == "LastAdmin"
    assert await row_counts(container) == before

    # With a second active admin, the first can step down.
    second = await make_admin(container, gql, "second@example.com")
    result = await gql(
        REVOKE, {"user": admin.user_id, "role": admin_role}, token=second.access_token
    )
    assert result["data"]["revokeRole"]["__typename"] == "RevokeRoleSuccess"
    # A deactivated admin does not count as the other admin.
    off = await gql(
        UPDATE_USER, {"id": admin.user_id, "input": {"isActive": False}}, token=second.access_token
    )
    assert off["data"]["updateUser"]["__typename"] == "UpdateUserSuccess"
    assert (await gql(DELETE_ME, {"p": PASSWORD}, token=second.access_token))["data"]["deleteMe"][
        "__typename"
    ] == "LastAdmin"


async def test_two_admins_demoting_each_other_at_once_leave_one(
    gql: GraphQLClient, container: Container
) -> None:
    first = await make_admin(container, gql, "one@example.com")
    second = await make_admin(container, gql, "two@example.com")
    admin_role = await role_id(gql, first, "admin")
    results = await asyncio.gather(
        gql(
            REVOKE,
            {"user": second.user_id, "role": admin_role},
            token=first.access_token,
            expect_errors=True,
        ),
        gql(
            REVOKE,
            {"user": first.user_id, "role": admin_role},
            token=second.access_token,
            expect_errors=True,
        ),
    )
    # One wins. The other is refused: LastAdmin, or FORBIDDEN if the winner's change had
    # already taken its admin role (and with it roles:assign) when its request was checked.
    kinds = sorted(
        r["data"]["revokeRole"]["__typename"]
        if r.get("data")
        else r["errors"][0]["extensions"]["code"]
        for r in results
    )
    assert kinds in (["LastAdmin", "RevokeRoleSuccess"], ["FORBIDDEN", "RevokeRoleSuccess"])
    admins = await scalar(
        container,
        "SELECT count(*) FROM user_roles JOIN roles ON roles.id = user_roles.role_id WHERE roles.name = 'admin'",
    )
    assert admins == 1


async def test_delete_me(gql: GraphQLClient, container: Container) -> None:
    user = await signed_up(gql)
    wrong = await gql(DELETE_ME, {"p": "not my password"}, token=user.access_token)
    assert wrong["data"]["deleteMe"]["__typename"] == "InvalidCredentials"
    assert await scalar(container, "SELECT count(*) FROM users") == 1
    gone = await gql(DELETE_ME, {"p": PASSWORD}, token=user.access_token)
    assert gone["data"]["deleteMe"]["__typename"] == "DeleteMeSuccess"
    assert await scalar(container, "SELECT count(*) FROM users") == 0
    assert await scalar(container, "SELECT count(*) FROM sessions") == 0
    assert (
        await scalar(
            container, "SELECT count(*) FROM audit_events WHERE action = 'user.deleted_self'"
        )
        == 1
    )


# Roles --------------------------------------------------------------------------------------


async def test_role_rules(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    token = admin.access_token
    before = await row_counts(container)
    create = "mutation($i: CreateRoleInput!) { createRole(input: $i) { __typename ... on ValidationError { fields { field code } } } }"
    dup = await gql(create, {"i": {"name": "admin", "permissions": []}}, token=token)
    assert dup["data"]["createRole"]["fields"] == [{"field": "name", "code": "taken"}]
    unknown = await gql(
        create, {"i": {"name": "ops", "permissions": ["users:read", "rockets:launch"]}}, token=token
    )
    assert unknown["data"]["createRole"]["fields"] == [
        {"field": "permissions", "code": "unknown_permission"}
    ]
    bad_name = await gql(create, {"i": {"name": " has space ", "permissions": []}}, token=token)
    assert bad_name["data"]["createRole"]["fields"] == [
        {"field": "name", "code": "invalid_characters"}
    ]
    admin_role, user_role = await role_id(gql, admin, "admin"), await role_id(gql, admin, "user")
    rename = await gql(UPDATE_ROLE, {"id": user_role, "input": {"name": "member"}}, token=token)
    assert rename["data"]["updateRole"]["fields"] == [{"field": "name", "code": "system_role"}]
    strip = await gql(
        UPDATE_ROLE, {"id": admin_role, "input": {"permissions": ["users:read"]}}, token=token
    )
    assert strip["data"]["updateRole"]["fields"] == [
        {"field": "permissions", "code": "system_role"}
    ]
    for system in (admin_role, user_role):
        refused = await gql(DELETE_ROLE, {"id": system}, token=token)
        assert refused["data"]["deleteRole"]["fields"] == [{"field": "id", "code": "system_role"}]
    assert await row_counts(container) == before

    # The user role's description and permissions may change (its name may not).
    described = await gql(
        UPDATE_ROLE,
        {"id": user_role, "input": {"description": "Everyone", "name": "user"}},
        token=token,
    )
    assert described["data"]["updateRole"]["role"]["description"] == "Everyone"


async def test_deleting_an_assigned_role_takes_it_from_holders(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    role = await create_role(gql, admin, "support", ["users:read"])
    holders = [await signed_up(gql, f"h{i}@example.com") for i in range(2)]
    for holder in holders:
        await gql(ASSIGN, {"user": holder.user_id, "role": role["id"]}, token=admin.access_token)
    deleted = await gql(DELETE_ROLE, {"id": role["id"]}, token=admin.access_token)
    assert deleted["data"]["deleteRole"]["__typename"] == "DeleteRoleSuccess"
    me = await gql("{ me { roles { name } permissions } }", token=holders[0].access_token)
    assert me["data"]["me"] == {"roles": [{"name": "user"}], "permissions": []}
    revocations = await scalar(
        container, "SELECT count(*) FROM audit_events WHERE action = 'admin.role_revoked'"
    )
    assert revocations == 2
    missing = await gql(DELETE_ROLE, {"id": role["id"]}, token=admin.access_token)
    assert missing["data"]["deleteRole"]["__typename"] == "NotFound"


async def test_assign_and_revoke_are_idempotent(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    user = await signed_up(gql)
    role = await create_role(gql, admin, "support", ["users:read"])
    for _ in range(2):
        result = await gql(
            ASSIGN, {"user": user.user_id, "role": role["id"]}, token=admin.access_token
        )
        assert result["data"]["assignRole"]["__typename"] == "AssignRoleSuccess"
    assert (
        await scalar(
            container, "SELECT count(*) FROM audit_events WHERE action = 'admin.role_assigned'"
        )
        == 1
    )
    for _ in range(2):
        result = await gql(
            REVOKE, {"user": user.user_id, "role": role["id"]}, token=admin.access_token
        )
        assert result["data"]["revokeRole"]["user"]["roles"] == [{"name": "user"}]
    unknown = await gql(
        ASSIGN,
        {"user": user.user_id, "role": "5b0c1f9e-0000-0000-0000-000000000000"},
        token=admin.access_token,
    )
    assert unknown["data"]["assignRole"]["__typename"] == "NotFound"
