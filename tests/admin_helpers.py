"""Helpers for tests of the admin API: an admin, users with exactly one permission."""

from __future__ import annotations

from typing import Any

from identity.container import Container
from tests.conftest import PASSWORD, GraphQLClient, SignedIn, login, signed_up

ROLES = "{ roles { id name isSystem permissions { code } } }"
CREATE_ROLE = """
mutation($input: CreateRoleInput!) {
  createRole(input: $input) {
    __typename
    ... on CreateRoleSuccess { role { id name description permissions { code } } }
    ... on ValidationError { fields { field code } }
  }
}
"""
ASSIGN = """
mutation($user: ID!, $role: ID!) {
  assignRole(userId: $user, roleId: $role) {
    __typename ... on AssignRoleSuccess { user { roles { name } permissions } }
  }
}
"""
REVOKE = """
mutation($user: ID!, $role: ID!) {
  revokeRole(userId: $user, roleId: $role) {
    __typename ... on RevokeRoleSuccess { user { roles { name } permissions } }
  }
}
"""


async def make_admin(
    container: Container, gql: GraphQLClient, email: str = "root@example.com"
) -> SignedIn:
    async with container.unit_of_work() as uow:
        await container.admin.ensure_admin(uow, email, PASSWORD, "Root", "Admin")
    return await login(gql, email)


async def role_id(gql: GraphQLClient, admin: SignedIn, name: str) -> str:
    roles = (await gql(ROLES, token=admin.access_token))["data"]["roles"]
    found: str = next(r["id"] for r in roles if r["name"] == name)
    return found


async def create_role(
    gql: GraphQLClient, admin: SignedIn, name: str, permissions: list[str]
) -> dict[str, Any]:
    variables = {"input": {"name": name, "description": f"{name} role", "permissions": permissions}}
    result = (await gql(CREATE_ROLE, variables, token=admin.access_token))["data"]["createRole"]
    assert result["__typename"] == "CreateRoleSuccess", result
    role: dict[str, Any] = result["role"]
    return role


async def user_with(
    gql: GraphQLClient, admin: SignedIn, email: str, permissions: list[str]
) -> SignedIn:
    """A signed-in user whose only extra power is `permissions` (through a role of its own)."""
    user = await signed_up(gql, email)
    if permissions:
        role = await create_role(gql, admin, "r-" + email.split("@")[0], permissions)
        result = await gql(
            ASSIGN, {"user": user.user_id, "role": role["id"]}, token=admin.access_token
        )
        assert result["data"]["assignRole"]["__typename"] == "AssignRoleSuccess"
    return user
