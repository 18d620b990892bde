"""Every protected field: without a token, with a token lacking the permission, with it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from graphql import GraphQLObjectType, build_schema

from identity.container import Container
from identity.graphql.schema import sdl
from tests.admin_helpers import ASSIGN, REVOKE, create_role, make_admin, role_id, user_with
from tests.conftest import GraphQLClient, row_counts, signed_up

UNKNOWN = str(uuid.uuid4())

# (name, permission, document, variables). The variables name unknown ids, so an allowed
# mutation answers NotFound (or ValidationError) and changes nothing.
PROTECTED: list[tuple[str, str, str, dict[str, Any]]] = [
    ("user", "users:read", "query($id: ID!) { user(id: $id) { id } }", {"id": UNKNOWN}),
    ("users", "users:read", "{ users(first: 1) { edges { node { id } } } }", {}),
    ("roles", "roles:read", "{ roles { id } }", {}),
    ("role", "roles:read", "query($id: ID!) { role(id: $id) { id } }", {"id": UNKNOWN}),
    ("permissions", "roles:read", "{ permissions { code } }", {}),
    ("auditEvents", "audit:read", "{ auditEvents(first: 1) { edges { node { id } } } }", {}),
    (
        "createUser",
        "users:write",
        'mutation { createUser(input: {email: "bad"}) { __typename } }',
        {},
    ),
    (
        "updateUser",
        "users:write",
        "mutation($id: ID!) { updateUser(id: $id, input: {}) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "deleteUser",
        "users:delete",
        "mutation($id: ID!) { deleteUser(id: $id) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "verifyUser",
        "users:write",
        "mutation($id: ID!) { verifyUser(id: $id) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "revokeUserSessions",
        "users:write",
        "mutation($id: ID!) { revokeUserSessions(userId: $id) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "assignRole",
        "roles:assign",
        "mutation($id: ID!) { assignRole(userId: $id, roleId: $id) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "revokeRole",
        "roles:assign",
        "mutation($id: ID!) { revokeRole(userId: $id, roleId: $id) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "createRole",
        "roles:write",
        'mutation { createRole(input: {name: "x y", permissions: []}) { __typename } }',
        {},
    ),
    (
        "updateRole",
        "roles:write",
        "mutation($id: ID!) { updateRole(id: $id, input: {}) { __typename } }",
        {"id": UNKNOWN},
    ),
    (
        "deleteRole",
        "roles:write",
        "mutation($id: ID!) { deleteRole(id: $id) { __typename } }",
        {"id": UNKNOWN},
    ),
]


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


@pytest.mark.parametrize(
    ("name", "permission", "document", "variables"), PROTECTED, ids=[p[0] for p in PROTECTED]
)
async def test_permission_boundary(
    gql: GraphQLClient,
    container: Container,
    name: str,
    permission: str,
    document: str,
    variables: dict[str, Any],
) -> None:
    admin = await make_admin(container, gql)
    plain = await user_with(gql, admin, "plain@example.com", [])
    # Holding every permission but this one must not be enough.
    others = [
        "users:read",
        "users:write",
        "users:delete",
        "roles:read",
        "roles:write",
        "roles:assign",
        "audit:read",
    ]
    almost = await user_with(
        gql, admin, "almost@example.com", [p for p in others if p != permission]
    )
    allowed = await user_with(gql, admin, "allowed@example.com", [permission])
    before = await row_counts(container)

    assert _code(await gql(document, variables, expect_errors=True)) == "UNAUTHENTICATED"
    assert (
        _code(await gql(document, variables, token=plain.access_token, expect_errors=True))
        == "FORBIDDEN"
    )
    assert (
        _code(await gql(document, variables, token=almost.access_token, expect_errors=True))
        == "FORBIDDEN"
    )
    body = await gql(document, variables, token=allowed.access_token, expect_errors=True)
    assert _code(body) is None, body
    assert body["data"][name] is not None or name in ("user", "role")
    assert await row_counts(container) == before  # refusals and NotFound change nothing


@pytest.mark.parametrize(("name", "permission"), [(p[0], p[1]) for p in PROTECTED])
def test_each_protected_field_names_its_permission(name: str, permission: str) -> None:
    schema = build_schema(sdl())
    query, mutation = schema.query_type, schema.mutation_type
    assert query is not None
    assert mutation is not None
    field = query.fields.get(name) or mutation.fields[name]
    assert f"`{permission}`" in (field.description or "")


def test_user_sessions_names_who_may_read_them() -> None:
    user = build_schema(sdl()).get_type("User")
    assert isinstance(user, GraphQLObjectType)
    assert "`users:read`" in (user.fields["sessions"].description or "")


async def test_sessions_of_another_user_need_users_read(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    reader = await user_with(gql, admin, "reader@example.com", ["users:read"])
    plain = await signed_up(gql, "plain@example.com")
    query = "query($id: ID!) { user(id: $id) { email sessions { id current } } }"
    own = await gql("{ me { sessions { id current } } }", token=plain.access_token)
    assert [s["current"] for s in own["data"]["me"]["sessions"]] == [True]
    seen = await gql(query, {"id": plain.user_id}, token=reader.access_token)
    assert seen["data"]["user"]["sessions"][0]["current"] is False


async def test_permissions_are_the_union_of_roles_and_change_at_once(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    support = await create_role(gql, admin, "support", ["users:read"])
    auditor = await create_role(gql, admin, "auditor", ["audit:read", "users:read"])
    agent = await signed_up(gql, "agent@example.com")
    users = "{ users(first: 5) { edges { node { email } } } }"
    assert _code(await gql(users, token=agent.access_token, expect_errors=True)) == "FORBIDDEN"

    await gql(ASSIGN, {"user": agent.user_id, "role": support["id"]}, token=admin.access_token)
    assigned = await gql(
        ASSIGN, {"user": agent.user_id, "role": auditor["id"]}, token=admin.access_token
    )
    assert assigned["data"]["assignRole"]["user"]["permissions"] == ["audit:read", "users:read"]
    # The same access token gains the power at once...
    assert _code(await gql(users, token=agent.access_token)) is None
    me = await gql("{ me { permissions roles { name } } }", token=agent.access_token)
    assert me["data"]["me"]["permissions"] == ["audit:read", "users:read"]

    # ... and loses exactly what a revoked role granted, at once.
    await gql(REVOKE, {"user": agent.user_id, "role": auditor["id"]}, token=admin.access_token)
    assert _code(await gql(users, token=agent.access_token)) is None  # support still grants it
    audit = "{ auditEvents(first: 1) { edges { cursor } } }"
    assert _code(await gql(audit, token=agent.access_token, expect_errors=True)) == "FORBIDDEN"
    await gql(REVOKE, {"user": agent.user_id, "role": support["id"]}, token=admin.access_token)
    assert _code(await gql(users, token=agent.access_token, expect_errors=True)) == "FORBIDDEN"


async def test_changing_a_roles_permissions_applies_to_holders_at_once(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    agent = await user_with(gql, admin, "agent@example.com", ["users:read"])
    role = await role_id(gql, admin, "r-agent")
    update = "mutation($id: ID!, $p: [String!]) { updateRole(id: $id, input: {permissions: $p}) { __typename } }"
    await gql(update, {"id": role, "p": ["roles:read"]}, token=admin.access_token)
    users = "{ users(first: 1) { edges { cursor } } }"
    assert _code(await gql(users, token=agent.access_token, expect_errors=True)) == "FORBIDDEN"
    assert _code(await gql("{ roles { name } }", token=agent.access_token)) is None


async def test_admin_holds_every_permission(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    me = await gql("{ me { permissions } }", token=admin.access_token)
    assert me["data"]["me"]["permissions"] == sorted(
        [
            "users:read",
            "users:write",
            "users:delete",
            "roles:read",
            "roles:write",
            "roles:assign",
            "audit:read",
            "webhooks:read",
            "webhooks:write",
            "clients:read",
            "clients:write",
        ]
    )
