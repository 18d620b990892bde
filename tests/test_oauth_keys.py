"""ID tokens are RS256 whatever IDENTITY_JWT_ALGORITHM says: an RS256 key is kept for them."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import GraphQLClient, signed_up
from tests.oauth_helpers import create_client, exchange, pkce, sign_in_and_consent


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"jwt_algorithm": "ES256"}


async def test_es256_for_identity_rs256_for_id_tokens(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]
    states = container.runtime.keyring.states(container.runtime.clock.now())
    assert sorted((s.algorithm, s.state) for s in states) == [
        ("ES256", "active"),
        ("RS256", "active"),
    ]

    admin = await make_admin(container, gql)
    assert jwt.get_unverified_header(admin.access_token)["alg"] == "ES256"
    app, secret = await create_client(gql, admin)
    user = await signed_up(gql)
    assert jwt.get_unverified_header(user.access_token)["alg"] == "ES256"
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()
    assert jwt.get_unverified_header(body["id_token"])["alg"] == "RS256"
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"
    me = await gql("{ me { email } }", token=user.access_token)
    assert me["data"]["me"]["email"] == "ann@example.com"

    # Revoking the ID-token key puts a new RS256 key in its place, not one of ours.
    rs256 = next(k["kid"] for k in keys if k["alg"] == "RS256")
    async with container.unit_of_work() as uow:
        revoked = await container.keys.revoke(uow, rs256)
    assert revoked.replacement is not None
    states = container.runtime.keyring.states(container.runtime.clock.now())
    active = sorted(
        (s.algorithm, s.kid == revoked.replacement) for s in states if s.state == "active"
    )
    assert active == [("ES256", False), ("RS256", True)]
