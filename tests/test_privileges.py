"""No permission reaches past itself; and the edges a security review found."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from identity.container import Container
from tests.admin_helpers import ASSIGN, REVOKE, create_role, make_admin, role_id, user_with
from tests.conftest import GraphQLClient, Inbox, scalar, settle_outbox, signed_up

CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) { __typename ... on CreateUserSuccess { user { roles { name } } } }
}
"""
UPDATE_USER = "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { __typename } }"
UPDATE_ROLE = "mutation($id: ID!, $p: [String!]) { updateRole(id: $id, input: {permissions: $p}) { __typename } }"


def code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


async def test_users_write_cannot_hand_out_roles(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    admin = await make_admin(container, gql)
    support = await user_with(gql, admin, "support@example.com", ["users:write"])
    for roles in (["admin"], ["r-support"]):
        body = await gql(
            CREATE_USER,
            {"input": {"email": "mine@example.com", "roles": roles}},
            token=support.access_token,
            expect_errors=True,
        )
        assert code(body) == "FORBIDDEN", body
    assert (
        await scalar(container, "SELECT count(*) FROM users WHERE email = 'mine@example.com'") == 0
    )
    plain = await gql(
        CREATE_USER, {"input": {"email": "plain@example.com"}}, token=support.access_token
    )
    assert plain["data"]["createUser"]["user"]["roles"] == [{"name": "user"}]
    empty = await gql(
        CREATE_USER, {"input": {"email": "none@example.com", "roles": []}}, token=admin.access_token
    )
    assert empty["data"]["createUser"]["user"]["roles"] == []  # [] means no role


async def test_users_write_cannot_touch_a_more_powerful_user(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    support = await user_with(gql, admin, "support@example.com", ["users:write", "users:delete"])
    token = support.access_token
    for document, variables in (
        (UPDATE_USER, {"id": admin.user_id, "input": {"email": "support+evil@example.com"}}),
        (UPDATE_USER, {"id": admin.user_id, "input": {"isActive": False}}),
        (
            "mutation($id: ID!) { revokeUserSessions(userId: $id) { __typename } }",
            {"id": admin.user_id},
        ),
        ("mutation($id: ID!) { deleteUser(id: $id) { __typename } }", {"id": admin.user_id}),
    ):
        assert code(await gql(document, variables, token=token, expect_errors=True)) == "FORBIDDEN"
    assert (
        await scalar(container, "SELECT email FROM users WHERE email = 'root@example.com'")
        == "root@example.com"
    )
    # A user without more power than the caller is fair game.
    worker = await signed_up(gql, "worker@example.com")
    moved = await gql(UPDATE_USER, {"id": worker.user_id, "input": {"firstName": "W"}}, token=token)
    assert moved["data"]["updateUser"]["__typename"] == "UpdateUserSuccess"


async def test_roles_assign_cannot_make_an_admin(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    helper = await user_with(gql, admin, "helper@example.com", ["roles:assign", "roles:read"])
    admin_role = await role_id(gql, admin, "admin")
    for document in (ASSIGN, REVOKE):
        body = await gql(
            document,
            {"user": helper.user_id, "role": admin_role},
            token=helper.access_token,
            expect_errors=True,
        )
        assert code(body) == "FORBIDDEN"
    # A role whose permissions the helper holds can be given.
    reader = await create_role(gql, admin, "reader", ["roles:read"])
    given = await gql(
        ASSIGN, {"user": helper.user_id, "role": reader["id"]}, token=helper.access_token
    )
    assert given["data"]["assignRole"]["__typename"] == "AssignRoleSuccess"
    # But not to, or from, someone who holds more than the helper: the admin neither gains
    # nor loses a role the helper could otherwise give or take.
    mine = await gql(
        ASSIGN, {"user": admin.user_id, "role": reader["id"]}, token=admin.access_token
    )
    assert mine["data"]["assignRole"]["__typename"] == "AssignRoleSuccess"
    user_role = await role_id(gql, admin, "user")
    for document, role in ((ASSIGN, user_role), (REVOKE, reader["id"])):
        body = await gql(
            document,
            {"user": admin.user_id, "role": role},
            token=helper.access_token,
            expect_errors=True,
        )
        assert code(body) == "FORBIDDEN", body
    held = await scalar(
        container,
        "SELECT count(*) FROM user_roles JOIN users ON users.id = user_roles.user_id "
        "WHERE users.email = 'root@example.com'",
    )
    assert held == 2  # admin and reader, as before


async def test_roles_write_cannot_grant_what_it_lacks(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    editor = await user_with(gql, admin, "editor@example.com", ["roles:write", "roles:read"])
    created = await gql(
        'mutation { createRole(input: {name: "sneaky", permissions: ["users:delete"]}) { __typename } }',
        token=editor.access_token,
        expect_errors=True,
    )
    assert code(created) == "FORBIDDEN"
    own_role = await role_id(gql, admin, "r-editor")
    widened = await gql(
        UPDATE_ROLE,
        {"id": own_role, "p": ["roles:write", "roles:read", "roles:assign"]},
        token=editor.access_token,
        expect_errors=True,
    )
    assert code(widened) == "FORBIDDEN"
    assert await scalar(container, "SELECT count(*) FROM roles WHERE name = 'sneaky'") == 0


async def test_changing_your_own_roles_answers_with_the_new_ones(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    auditor = await create_role(gql, admin, "auditor", ["audit:read"])
    result = await gql(
        ASSIGN, {"user": admin.user_id, "role": auditor["id"]}, token=admin.access_token
    )
    assert "auditor" in [r["name"] for r in result["data"]["assignRole"]["user"]["roles"]]
    result = await gql(
        REVOKE, {"user": admin.user_id, "role": auditor["id"]}, token=admin.access_token
    )
    assert "auditor" not in [r["name"] for r in result["data"]["revokeRole"]["user"]["roles"]]


async def test_concurrent_identical_assignments_stay_idempotent(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    user = await signed_up(gql)
    reader = await create_role(gql, admin, "reader", ["roles:read"])
    results = await asyncio.gather(
        *(
            gql(ASSIGN, {"user": user.user_id, "role": reader["id"]}, token=admin.access_token)
            for _ in range(4)
        )
    )
    assert {r["data"]["assignRole"]["__typename"] for r in results} == {"AssignRoleSuccess"}
    assigned = "SELECT count(*) FROM audit_events WHERE action = 'admin.role_assigned'"
    assert await scalar(container, assigned) == 1  # one grant happened


@pytest.mark.parametrize("password", ["", "   ", "x" * 600])
async def test_delete_me_with_an_impossible_password_is_invalid_credentials(
    gql: GraphQLClient, container: Container, password: str
) -> None:
    user = await signed_up(gql)
    body = await gql(
        "mutation($p: String!) { deleteMe(input: {currentPassword: $p}) { __typename } }",
        {"p": password},
        token=user.access_token,
    )
    assert body["data"]["deleteMe"]["__typename"] == "InvalidCredentials"
    assert await scalar(container, "SELECT count(*) FROM users") == 1


async def test_a_wrong_current_password_says_so(gql: GraphQLClient) -> None:
    user = await signed_up(gql)
    body = await gql(
        'mutation { changePassword(input: {currentPassword: "not it", newPassword: "whatever it is now"}) { __typename ... on Error { message } } }',
        token=user.access_token,
    )
    assert body["data"]["changePassword"]["message"] == "The current password is incorrect."


LOGIN_ONE = (
    'mutation($e: String!) { login(input: {email: $e, password: "password guess"}) { __typename } }'
)


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_login_address": "2/minute", "trusted_proxies": "203.0.113.0/24"}],
)
async def test_one_ipv6_subnet_is_one_client(gql: GraphQLClient) -> None:
    answers = []
    for i in range(1, 5):  # four addresses of one /64
        body = await gql(
            LOGIN_ONE,
            {"e": f"v{i}@example.com"},
            headers={"X-Forwarded-For": f"2001:db8:1:2::{i:x}"},
        )
        answers.append(body["data"]["login"]["__typename"])
    assert answers == ["InvalidCredentials", "InvalidCredentials", "RateLimited", "RateLimited"]
    other = await gql(
        LOGIN_ONE, {"e": "v9@example.com"}, headers={"X-Forwarded-For": "2001:db8:1:3::1"}
    )
    assert other["data"]["login"]["__typename"] == "InvalidCredentials"  # another /64


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_address": "2/minute"}])
async def test_clients_without_an_address_are_still_limited(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app, client=None)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answers = []
        for i in range(3):
            response = await http.post(
                "/graphql", json={"query": LOGIN_ONE, "variables": {"e": f"v{i}@example.com"}}
            )
            answers.append(response.json()["data"]["login"]["__typename"])
    assert answers == ["InvalidCredentials", "InvalidCredentials", "RateLimited"]


async def test_password_reset_requests_do_the_same_work_for_any_address(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    await signed_up(gql, "known@example.com")
    mutation = "mutation($e: String!) { requestPasswordReset(input: {email: $e}) { __typename } }"
    for email in ("known@example.com", "nobody@example.com"):
        await gql(mutation, {"e": email})
    # Each request wrote the same rows: one outbox entry and one audit event.
    requests = "SELECT count(*) FROM outbox_messages WHERE template = 'password_reset_request'"
    assert await scalar(container, requests) == 2
    await settle_outbox(container)
    links = "SELECT recipient FROM outbox_messages WHERE template = 'password_reset'"
    assert await scalar(container, links) == "known@example.com"
